"""Rendering posters: compose the canvas, write print-ready JPEG and PDF, record provenance.

Reads: a template (``config/posters/<config_id>.yaml``), the database (``clustering_runs``,
``pictures_embedding``, ``pictures``, and ``posters``/``posters_slots`` to regenerate) and the
full-size pictures in ``paths.collections``.
Writes: ``paths.posters/<poster_id>.jpg`` and ``.pdf`` (and ``<config_id>-preview.jpg``), and one
``posters`` row plus one ``posters_slots`` row per slot for each poster.

Every picture is decoded by the ingest's decoder (:func:`iss.data.images.open_picture`: upright,
transparency on black, at a reduced scale when it is much larger than the slot), centre-cropped
to its slot's aspect ratio (never stretched), shrunk with Lanczos or
enlarged with the configured upscaler, and pasted into the canvas straight away, so memory
holds the canvas plus one picture.

Files are deterministic: the JPEG holds only pixels, the JFIF density (dpi) and the fixed
encoder settings recorded with the poster; the PDF embeds those very JPEG bytes (img2pdf: no
re-encoding, page size = pixels / dpi) with no creation date and a content-derived /ID. So the
same seed gives the same bytes, and ``regenerate_poster`` rebuilds a byte-identical file from
the database (the files' sha256 are stored in ``posters.params`` and checked).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import math
import time
from pathlib import Path

import img2pdf
from PIL import Image, ImageDraw, ImageFont
from sqlalchemy import select
from sqlalchemy.engine import Engine

from iss.artefacts import write_bytes
from iss.data.images import PictureError, open_picture
from iss.db import schema
from iss.db.queries import filenames_of, replace_rows
from iss.posters.selection import Selection, SlotChoice, select_pictures
from iss.posters.templates import PosterError, Template, load_template, parse_template, template_path
from iss.posters.upscale import Upscaler, get_upscaler, lanczos

log = logging.getLogger(__name__)

RENDER_VERSION = 1
# 4:4:4 chroma (no subsampling): colour edges stay sharp in print
JPEG_SUBSAMPLING = 0


# --- one picture --------------------------------------------------------------------
def centre_crop_box(width: int, height: int, aspect: float) -> tuple[float, float, float, float]:
    """The largest box of aspect ratio ``aspect`` (width / height) centred in a ``width`` x ``height``
    picture: ``(left, top, right, bottom)``, floats."""
    if width / height > aspect:  # too wide: keep the full height
        crop_w, crop_h = height * aspect, float(height)
    else:  # too tall: keep the full width
        crop_w, crop_h = float(width), width / aspect
    left, top = (width - crop_w) / 2, (height - crop_h) / 2
    return left, top, left + crop_w, top + crop_h


def fit_picture(path: str | Path, size: tuple[int, int], upscaler: Upscaler = lanczos) -> Image.Image:
    """A picture centre-cropped to ``size``'s aspect ratio and resized to exactly ``size``.

    Parameters
    ----------
    path : str or Path
        Any picture file the ingest reads (JPEG decodes at reduced scale when much larger than ``size``).
    size : (int, int)
        ``(width, height)`` in pixels.
    upscaler : callable, default lanczos
        Used when the crop is smaller than ``size``; shrinking always uses Lanczos.

    Returns
    -------
    PIL.Image.Image
        RGB, exactly ``size``.
    """
    width, height = int(size[0]), int(size[1])
    aspect = width / height

    def covering(full_w: int, full_h: int) -> tuple[int, int]:
        """The decoded size whose centre crop still covers the slot (JPEG: 1/2..1/8 scale when enough)."""
        left, top, right, bottom = centre_crop_box(full_w, full_h, aspect)
        scale = min(1.0, width / (right - left))
        return (math.ceil(full_w * scale), math.ceil(full_h * scale))

    try:  # the one decoder: upright (EXIF), transparency on black, like the picture's thumbnail
        rgb = open_picture(path, min_size=covering).image
    except PictureError as exc:
        raise PosterError(f"picture {path} cannot be decoded: {exc.reason} ({exc.detail})") from exc
    left, top, right, bottom = centre_crop_box(rgb.width, rgb.height, aspect)
    if right - left >= width:
        return rgb.resize((width, height), Image.Resampling.LANCZOS, box=(left, top, right, bottom))
    crop = rgb.crop((round(left), round(top), round(right), round(bottom)))
    out = upscaler(crop, (width, height))
    if not isinstance(out, Image.Image) or out.size != (width, height):
        got = out.size if isinstance(out, Image.Image) else type(out).__name__
        raise PosterError(f"upscaler {getattr(upscaler, '__name__', upscaler)!r} returned {got} for {path}; "
                          f"it must return a PIL image of exactly {(width, height)}")
    return out.convert("RGB") if out.mode != "RGB" else out


# --- the canvas -----------------------------------------------------------------------
def _blank(template: Template) -> Image.Image:
    """The canvas in border colour, with each slot's picture area in its background colour."""
    canvas = Image.new("RGB", (template.width_px, template.height_px), template.border_colour)
    draw = ImageDraw.Draw(canvas)
    for slot in template.slots:
        left, top, right, bottom = template.picture_box(slot)
        draw.rectangle((left, top, right - 1, bottom - 1), fill=slot.background)
    return canvas


def _font(size: int, bold: bool = False):
    """DejaVu Sans (shipped with matplotlib, always there) at ``size`` px, else PIL's bundled font."""
    try:
        from iss.visualization.style import font_path

        return ImageFont.truetype(font_path(bold=bold), size)
    except (ImportError, OSError):
        return ImageFont.load_default(size=size)


def draw_band(canvas: Image.Image, template: Template, caption: str = "") -> None:
    """Fill the template's band with its colour, its title (left, bold) and ``caption`` (under it, or
    alone), each shrunk to fit the band's width."""
    box = template.band_box()
    if box is None:
        return
    band = template.band
    left, top, right, bottom = box
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((left, top, right - 1, bottom - 1), fill=band.colour)
    lines = [(band.title, True), (caption if band.caption else "", False)]
    lines = [(text, bold) for text, bold in lines if text]
    if not lines:
        return
    height = bottom - top
    pad = max(8, height // 6)
    sizes = [int(height * 0.34), int(height * 0.2)] if len(lines) == 2 else [int(height * (0.4 if lines[0][1] else 0.26))]
    y = top + (height - sum(int(s * 1.25) for s in sizes)) // 2
    for (text, bold), size in zip(lines, sizes):
        font = _font(size, bold)
        while size > 8 and draw.textlength(text, font=font) > right - left - 2 * pad:
            size = int(size * 0.92)
            font = _font(size, bold)
        colour = band.text_colour if bold else tuple(int(c * 0.8 + b * 0.2) for c, b in zip(band.text_colour, band.colour))
        draw.text((left + pad, y), text, font=font, fill=colour)
        y += int(size * 1.25)


def poster_caption(engine: Engine, choices: list[SlotChoice]) -> str:
    """``"dark, city lights · glare, orange — 13 Nov to 10 Dec 2017 — over Asia, Pacific Ocean"``: the names
    of the clusters shown (most slots first), the dates and the three commonest places of the pictures."""
    from collections import Counter

    from iss.clustering.names import cluster_names
    from iss.visualization.style import cluster_name

    ids = [c.pictures_id for c in choices]
    p, loc, e = schema.pictures, schema.pictures_location, schema.pictures_embedding
    with engine.connect() as conn:
        times = [r[0] for r in conn.execute(select(p.c.taken_at).where(p.c.pictures_id.in_(ids))) if r[0]]
        places = [r[0] for r in conn.execute(select(loc.c.pictures_location_text).where(loc.c.pictures_id.in_(ids)))
                  if r[0]]
        labels = Counter()
        for choice in choices:
            if choice.run_id is None:
                continue
            label = conn.execute(select(e.c.label).where((e.c.run_id == choice.run_id)
                                                         & (e.c.pictures_id == choice.pictures_id))).scalar()
            if label is not None:
                labels[(choice.run_id, int(label))] += 1
    names = {}
    for run_id in {r for r, _ in labels}:
        names[run_id] = {k: v["name"] for k, v in cluster_names(engine, run_id).items()}
    parts = [" · ".join(cluster_name(label, names.get(run_id)) for (run_id, label), _ in labels.most_common())]
    if times:
        first, last = min(times), max(times)
        parts.append(f"{first:%-d %b %Y}" if first.date() == last.date() else
                     f"{first:%-d %b}{'' if first.year == last.year else f' {first:%Y}'} to {last:%-d %b %Y}")
    if places:
        parts.append("over " + ", ".join(place for place, _ in Counter(places).most_common(3)))
    return " — ".join(part for part in parts if part)


def compose_poster(template: Template, choices: list[SlotChoice], collections: Path,
                   upscaler: Upscaler = lanczos, caption: str = "") -> Image.Image:
    """The poster image: each chosen picture fitted to its slot's picture box and pasted, and the
    template's band (title and ``caption``) if it has one.

    Returns
    -------
    PIL.Image.Image
        RGB, ``(template.width_px, template.height_px)``.
    """
    canvas = _blank(template)
    draw_band(canvas, template, caption)
    for choice in choices:
        left, top, right, bottom = template.picture_box(choice.slot)
        path = Path(collections) / choice.filename
        if not path.is_file():
            raise PosterError(f"{choice.slot.name}: picture {choice.pictures_id} has no file {path}; "
                              f"run `make sync_collections` or fix paths.collections")
        canvas.paste(fit_picture(path, (right - left, bottom - top), upscaler), (left, top))
    return canvas


def draw_preview(template: Template) -> Image.Image:
    """The template drawn as the original project did: coloured slots with their position labels
    (plus each slot's rule), on the border colour."""
    canvas = _blank(template)
    draw = ImageDraw.Draw(canvas)
    for slot in template.slots:
        left, top, right, bottom = template.picture_box(slot)
        size = max(10, (bottom - top) // 10)
        font = ImageFont.load_default(size=size)  # bundled font: no system font needed
        luma = 0.299 * slot.background[0] + 0.587 * slot.background[1] + 0.114 * slot.background[2]
        ink = (0, 0, 0) if luma > 128 else (255, 255, 255)
        pad = max(4, size // 3)
        draw.text((left + pad, top + pad), f"position {slot.position}", fill=ink, font=font)
        draw.text((left + pad, top + pad + int(size * 1.3)), f"slot {slot.index}: {slot.rule.describe()}",
                  fill=ink, font=ImageFont.load_default(size=max(8, size * 2 // 3)))
    return canvas


# --- files ----------------------------------------------------------------------------
def jpeg_bytes(image: Image.Image, dpi: int, quality: int) -> bytes:
    """Baseline JPEG with the JFIF density set to ``dpi`` and nothing else (no EXIF, no dates)."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(quality), subsampling=JPEG_SUBSAMPLING, dpi=(dpi, dpi),
               optimize=False, progressive=False)
    return buffer.getvalue()


def pdf_bytes(jpeg: bytes, dpi: int, title: str) -> bytes:
    """A one-page PDF embedding ``jpeg`` unchanged (DCTDecode), page size = pixels / dpi.

    img2pdf rather than PIL's PDF writer: it embeds the JPEG bytes losslessly (PIL re-encodes
    them) and, with ``nodate``, writes no creation or modification date. Its ``internal`` engine
    writes no random /ID either (the pikepdf engine would: img2pdf 0.6 compares pikepdf versions
    as strings and leaves qpdf's time-based /ID on for pikepdf >= 10), so the same JPEG always
    gives the same PDF.
    """
    layout = img2pdf.get_fixed_dpi_layout_fun((dpi, dpi))
    return img2pdf.convert(jpeg, layout_fun=layout, nodate=True, title=title, engine=img2pdf.Engine.internal)


def _write(path: Path, data: bytes) -> None:
    """Write through a temporary file then rename: a crash never leaves half a poster."""
    write_bytes(path, data)


def _stored_path(cfg, path: Path) -> str:
    """``path`` relative to the project root when under it (portable), else absolute."""
    try:
        return str(path.resolve().relative_to(Path(cfg.root).resolve()))
    except ValueError:
        return str(path.resolve())


def _resolve_stored(cfg, stored: str) -> Path:
    path = Path(stored)
    return path if path.is_absolute() else Path(cfg.root) / path


def _render_settings(cfg) -> dict:
    settings = {key: cfg.get(f"posters.{key}") for key in ("jpeg_quality", "upscaler", "pdf")}
    quality = settings["jpeg_quality"]
    if not isinstance(quality, int) or not 1 <= quality <= 95:
        raise PosterError(f"{cfg.source}: posters.jpeg_quality should be an integer in 1..95, got {quality!r}")
    get_upscaler(str(settings["upscaler"]))  # fail before rendering if unknown
    return {"jpeg_quality": quality, "subsampling": "4:4:4", "upscaler": str(settings["upscaler"]),
            "pdf": bool(settings["pdf"]), "version": RENDER_VERSION}


def _render_files(cfg, template: Template, choices: list[SlotChoice], title: str, settings: dict,
                  jpeg_path: Path, caption: str = "") -> dict:
    """Compose, encode and write the JPEG (and PDF titled ``title``); returns their paths and sha256.

    The title is ``<config_id> seed <seed>``, not the poster id, so two posters made with the
    same template and seed are the same files."""
    image = compose_poster(template, choices, cfg.path("collections"), get_upscaler(settings["upscaler"]), caption)
    jpeg = jpeg_bytes(image, template.dpi, settings["jpeg_quality"])
    del image
    _write(jpeg_path, jpeg)
    files = {"jpeg": _stored_path(cfg, jpeg_path), "jpeg_sha256": hashlib.sha256(jpeg).hexdigest()}
    if settings["pdf"]:
        pdf = pdf_bytes(jpeg, template.dpi, title=title)
        pdf_path = jpeg_path.with_suffix(".pdf")
        _write(pdf_path, pdf)
        files.update(pdf=_stored_path(cfg, pdf_path), pdf_sha256=hashlib.sha256(pdf).hexdigest())
    return files


# --- steps ----------------------------------------------------------------------------
def poster_ids(config_id: str, n: int, poster_id: str | None, seed: int) -> list[str]:
    """``NAME, NAME-2, ... NAME-n`` when ``poster_id`` is given, else ``<config_id>-s<seed + i>``."""
    ids = ([poster_id] + [f"{poster_id}-{k}" for k in range(2, n + 1)] if poster_id
           else [f"{config_id}-s{seed + i}" for i in range(n)])
    too_long = [i for i in ids if len(i) > 64 or not i.strip() or "/" in i or "\\" in i]
    if too_long:
        raise PosterError(f"poster id {too_long[0]!r} is not usable: at most 64 characters, no '/' (it names the file)")
    return ids


def generate_posters(cfg, engine: Engine | None, config_id: str | None = None, n: int = 1,
                     poster_id: str | None = None, seed: int = 0, run_id: int | None = None) -> list[Path]:
    """Generate ``n`` posters from the template ``config_id``.

    Poster ``i`` (0-based) uses seed ``seed + i`` and id ``poster_id`` / ``poster_id-<i+1>`` (or
    ``<config_id>-s<seed+i>``), so ``--seed 7 --generate 1`` rebuilds the first of
    ``--seed 7 --generate 3``. Re-generating an existing poster id replaces its files and rows.

    Parameters
    ----------
    cfg : Config
    engine : Engine, optional
        Default: ``get_engine(cfg.database_url)``.
    config_id : str, optional
        Template name in ``config/posters`` (or a path to a .yaml); default ``posters.default_template``.
    n : int, default=1
    poster_id : str, optional
    seed : int, default=0
        Non-negative.
    run_id : int, optional
        Clustering run to use instead of the template's ``run``.

    Returns
    -------
    list of Path
        The JPEG files, one per poster.
    """
    if n < 1:
        raise PosterError(f"--generate should be at least 1, got {n}")
    if not 0 <= seed <= 2**31 - 1 - n:  # the posters.seed column is a 32-bit integer
        raise PosterError(f"--seed should be an integer in 0..{2**31 - 1 - n}, got {seed}")
    engine = engine or _engine(cfg)
    template = load_template(cfg, config_id or cfg.get("posters.default_template"))
    settings = _render_settings(cfg)
    out_dir = cfg.path("posters")
    paths = []
    for i, pid in enumerate(poster_ids(template.config_id, n, poster_id, seed)):
        start = time.perf_counter()
        poster_seed = seed + i
        selection = select_pictures(cfg, engine, template, poster_seed, run_id=run_id)
        jpeg_path = out_dir / f"{pid}.jpg"
        caption = poster_caption(engine, selection.choices) if template.band and template.band.caption else ""
        files = _render_files(cfg, template, selection.choices, _title(template.config_id, poster_seed), settings,
                              jpeg_path, caption)
        _record(engine, cfg, template, pid, poster_seed, selection, settings, {**files, "caption": caption})
        log.info("poster %s (%s, seed %d, run %s): %d slots, %s, in %.1f s -> %s", pid, template.config_id,
                 poster_seed, selection.run_id, len(template.slots), template.describe_size(),
                 time.perf_counter() - start, jpeg_path)
        paths.append(jpeg_path)
    return paths


def _record(engine: Engine, cfg, template: Template, poster_id: str, seed: int, selection: Selection,
            settings: dict, files: dict) -> None:
    """Replace the poster's ``posters`` row and ``posters_slots`` rows (one transaction)."""
    slots = []
    for choice in selection.choices:
        slots.append({"slot": choice.slot.index, "position": choice.slot.position,
                      "pictures_id": choice.pictures_id, "run_id": choice.run_id,
                      "box": list(template.picture_box(choice.slot)), **choice.detail})
    params = {
        "template_file": template.source, "template_sha256": template.sha256, "template": template.raw,
        "physical_size": template.physical_size(), "size": template.describe_size(), "render": settings,
        "files": files, "auto_clusters": {str(k): v for k, v in selection.auto_clusters.items()},
        "cluster_contrast": {str(k): {str(c): v for c, v in cs.items()} for k, cs in selection.cluster_contrast.items()},
        "slots": slots,
    }
    row = {"poster_id": poster_id, "config_id": template.config_id, "seed": seed, "run_id": selection.run_id,
           "width_px": template.width_px, "height_px": template.height_px, "dpi": template.dpi,
           "path": files["jpeg"], "params": params, "created_at": dt.datetime.now().replace(microsecond=0)}
    slot_rows = [{"poster_id": poster_id, "slot": c.slot.index, "position": c.slot.position,
                  "pictures_id": c.pictures_id} for c in selection.choices]
    with engine.begin() as conn:
        conn.execute(schema.posters_slots.delete().where(schema.posters_slots.c.poster_id == poster_id))
        replace_rows(conn, schema.posters, schema.posters.c.poster_id == poster_id, [row])
        conn.execute(schema.posters_slots.insert(), slot_rows)


def regenerate_poster(cfg, engine: Engine | None, poster_id: str) -> Path:
    """Rebuild a poster exactly from the database: the stored template, slot-to-picture mapping
    and render settings; writes the same files (byte-identical when the pictures and the
    libraries are unchanged: checked against the stored sha256, with a warning if not).

    Returns
    -------
    Path
        The JPEG file.
    """
    engine = engine or _engine(cfg)
    p, s = schema.posters, schema.posters_slots
    with engine.connect() as conn:
        row = conn.execute(select(p).where(p.c.poster_id == poster_id)).mappings().first()
        slot_rows = conn.execute(select(s.c.slot, s.c.pictures_id).where(s.c.poster_id == poster_id)).all()
    if row is None:
        with engine.connect() as conn:
            known = [r[0] for r in conn.execute(select(p.c.poster_id).order_by(p.c.poster_id).limit(20))]
        raise PosterError(f"no poster {poster_id!r} in the database; known posters: {', '.join(known) or 'none'}")
    params = row["params"] or {}
    if "template" not in params or "render" not in params:
        raise PosterError(f"poster {poster_id!r} has no stored template or render settings (params); "
                          f"generate it again instead")
    template = parse_template(params["template"], config_id=row["config_id"],
                              source=f"poster {poster_id} (stored copy of {params.get('template_file')})",
                              sha256=params.get("template_sha256"))
    _warn_if_template_changed(cfg, template, params)
    by_slot = dict(slot_rows)
    missing = [slot.name for slot in template.slots if slot.index not in by_slot]
    if missing:
        raise PosterError(f"poster {poster_id!r}: no posters_slots row for {', '.join(missing)}")
    filenames = filenames_of(engine, by_slot.values())
    choices = []
    for slot in template.slots:
        pid = by_slot[slot.index]
        if pid not in filenames:
            raise PosterError(f"poster {poster_id!r}: {slot.name} shows picture {pid}, which is no longer in the "
                              f"pictures table")
        choices.append(SlotChoice(slot=slot, pictures_id=pid, filename=filenames[pid]))
    settings = params["render"]
    files = params.get("files", {})
    jpeg_path = _resolve_stored(cfg, row["path"])
    start = time.perf_counter()
    new = _render_files(cfg, template, choices, _title(row["config_id"], row["seed"]), settings, jpeg_path,
                        files.get("caption", ""))
    for kind in ("jpeg", "pdf"):
        stored, now = files.get(f"{kind}_sha256"), new.get(f"{kind}_sha256")
        if stored and now and stored != now:
            log.warning("poster %s: regenerated %s differs from the original (sha256 %s..., was %s...): a picture "
                        "file or the imaging library changed", poster_id, kind.upper(), now[:12], stored[:12])
    log.info("poster %s regenerated from the database: %s, in %.1f s -> %s", poster_id, template.describe_size(),
             time.perf_counter() - start, jpeg_path)
    return jpeg_path


def _warn_if_template_changed(cfg, template: Template, params: dict) -> None:
    try:
        current = template_path(cfg, template.config_id)
    except PosterError:
        return
    if hashlib.sha256(current.read_bytes()).hexdigest() != params.get("template_sha256"):
        log.warning("template %s changed since poster was made; regenerating with the copy stored in the database",
                    current)


def preview_template(cfg, config_id: str | None = None) -> Path:
    """Draw the template's slots (colours, position labels, rules) to
    ``paths.posters/<config_id>-preview.jpg``, at the poster's size and dpi; no database needed."""
    template = load_template(cfg, config_id or cfg.get("posters.default_template"))
    path = cfg.path("posters") / f"{template.config_id}-preview.jpg"
    _write(path, jpeg_bytes(draw_preview(template), template.dpi, int(cfg.get("posters.jpeg_quality"))))
    log.info("preview of %s (%d slots, %s) -> %s", template.config_id, len(template.slots),
             template.describe_size(), path)
    return path


def _title(config_id: str, seed: int | None) -> str:
    return f"{config_id} seed {seed}"


def _engine(cfg) -> Engine:
    from iss.db.engine import get_engine
    return get_engine(cfg.database_url)
