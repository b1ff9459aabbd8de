"""Rendering: fitting pictures, print files (size, dpi, PDF page), determinism, regeneration and
the database rows (on SQLite and MariaDB)."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pikepdf
import pytest
from PIL import Image, JpegImagePlugin
from sqlalchemy import select

from iss.db import schema
from iss.posters.render import (centre_crop_box, fit_picture, generate_posters, poster_ids, preview_template,
                                regenerate_poster)
from iss.posters.templates import PosterError, PosterTemplateError, load_template
from iss.posters.upscale import get_upscaler, lanczos, lanczos_sharpen, register_upscaler

from ..conftest import real_frame_paths
from .helpers import SLOT_BACKGROUND, small_template

MAGENTA = np.array([255, 0, 255])


def read(path) -> bytes:
    return path.read_bytes()


def pdf_page_size_pt(path) -> tuple[float, float]:
    with pikepdf.open(path) as pdf:
        box = [float(v) for v in pdf.pages[0].mediabox]
    return box[2] - box[0], box[3] - box[1]


def background_fraction(image: Image.Image, box, colour=MAGENTA) -> float:
    """Share of a box's pixels still showing the slot background colour."""
    region = np.asarray(image.crop(box), dtype=np.int16)
    return float((np.abs(region - colour).max(axis=2) <= 40).mean())


# --- fitting one picture -------------------------------------------------------------
def striped(tmp_path, size=(640, 360)):
    """A picture with red / green / blue vertical bands: the outer bands are what a square crop drops."""
    w, h = size
    pixels = np.zeros((h, w, 3), np.uint8)
    pixels[:, : (w - h) // 2] = (255, 0, 0)
    pixels[:, (w - h) // 2: (w + h) // 2] = (0, 255, 0)
    pixels[:, (w + h) // 2:] = (0, 0, 255)
    path = tmp_path / "striped.png"
    Image.fromarray(pixels).save(path)
    return path


def test_centre_crop_box_keeps_the_middle():
    assert centre_crop_box(640, 360, 1.0) == (140.0, 0.0, 500.0, 360.0)
    assert centre_crop_box(640, 360, 4.0) == (0.0, 100.0, 640.0, 260.0)
    assert centre_crop_box(640, 360, 640 / 360) == (0.0, 0.0, 640.0, 360.0)


def test_fit_picture_centre_crops_never_stretches(tmp_path):
    path = striped(tmp_path)
    square = np.asarray(fit_picture(path, (90, 90)), dtype=np.int16)
    assert square.shape == (90, 90, 3)
    # the square crop is the green band only: no red or blue survives (inner pixels, away from filter taps)
    inner = square[:, 2:-2]
    assert inner[..., 1].min() > 200 and inner[..., 0].max() < 40 and inner[..., 2].max() < 40
    # a wide slot keeps all three bands at their original proportions (not squeezed)
    wide = np.asarray(fit_picture(path, (320, 60)))
    row = wide[30]
    red, green, blue = (row[:, 0] > 128).sum(), (row[:, 1] > 128).sum(), (row[:, 2] > 128).sum()
    assert abs(red - 70) <= 2 and abs(green - 180) <= 2 and abs(blue - 70) <= 2


def test_fit_picture_decodes_large_jpegs_at_reduced_scale(tmp_path, monkeypatch):
    # a 2560x1440 JPEG into a 200x150 slot: decoded at 1/8 scale, still close to a full decode
    big = Image.fromarray(np.asarray(Image.open(striped(tmp_path, (2560, 1440)))))
    path = tmp_path / "big.jpg"
    big.save(path, quality=95)
    drafted = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size, *args, **kwargs):
        result = real_draft(self, mode, size, *args, **kwargs)
        drafted.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    fitted = np.asarray(fit_picture(path, (200, 150)), dtype=np.int16)
    assert drafted == [(320, 180)]  # its 240x180 centre crop is still larger than the 200x150 slot
    full = np.asarray(big.resize((200, 150), Image.Resampling.LANCZOS,
                                 box=centre_crop_box(2560, 1440, 200 / 150)), dtype=np.int16)
    assert fitted.shape == (150, 200, 3)
    assert np.abs(fitted - full).mean() < 3


def test_upscaler_hook_is_used_to_enlarge(tmp_path):
    calls = []

    def recording(image, size):
        calls.append((image.size, size))
        return lanczos(image, size)

    register_upscaler("recording", recording)
    path = striped(tmp_path)
    out = fit_picture(path, (900, 900), get_upscaler("recording"))
    assert out.size == (900, 900)
    assert calls == [((360, 360), (900, 900))]  # the centre crop, at the slot's aspect
    fit_picture(path, (300, 300), get_upscaler("recording"))  # shrinking never calls it
    assert len(calls) == 1


def test_upscaler_returning_the_wrong_size_is_an_error(tmp_path):
    with pytest.raises(PosterError, match=r"must return a PIL image of exactly \(900, 900\)"):
        fit_picture(striped(tmp_path), (900, 900), lambda image, size: image)


def test_upscaler_names_and_import_paths():
    assert get_upscaler("lanczos") is lanczos
    assert get_upscaler("iss.posters.upscale:lanczos_sharpen") is lanczos_sharpen
    with pytest.raises(PosterError, match="not a registered upscaler"):
        get_upscaler("esrgan")
    with pytest.raises(PosterError, match="cannot import"):
        get_upscaler("iss.posters.upscale:nothing")


def test_poster_ids():
    assert poster_ids("grid", 3, "wall", 7) == ["wall", "wall-2", "wall-3"]
    assert poster_ids("grid", 2, None, 7) == ["grid-s7", "grid-s8"]
    with pytest.raises(PosterError, match="not usable"):
        poster_ids("grid", 1, "a/b", 0)


# --- posters -----------------------------------------------------------------------
def test_generated_poster_size_dpi_slots_and_rows(poster_env):
    cfg, engine = poster_env.cfg, poster_env.engine
    [path] = generate_posters(cfg, engine, "small", n=1, poster_id="p1", seed=3)
    assert path == cfg.path("posters") / "p1.jpg"
    template = load_template(cfg, "small")
    with Image.open(path) as image:
        assert image.size == (400, 300) and image.format == "JPEG"
        assert image.info["dpi"] == (50, 50)
        image = image.convert("RGB")
        # every slot filled: no picture area still shows the magenta slot background
        for slot in template.slots:
            assert background_fraction(image, template.picture_box(slot)) < 0.01, slot.name
        # and the border is drawn in its colour
        assert np.abs(np.asarray(image.crop((0, 0, 400, 6)), dtype=np.int16) - 16).max() < 24
    # the PDF page is the print size: 400 px / 50 dpi = 8 in = 576 pt
    assert pdf_page_size_pt(path.with_suffix(".pdf")) == pytest.approx((576.0, 432.0))

    with engine.connect() as conn:
        row = conn.execute(select(schema.posters)).mappings().one()
        slots = conn.execute(select(schema.posters_slots).order_by(schema.posters_slots.c.slot)).mappings().all()
    assert (row["poster_id"], row["config_id"], row["seed"], row["run_id"]) == ("p1", "small", 3, poster_env.run_id)
    assert (row["width_px"], row["height_px"], row["dpi"]) == (400, 300, 50)
    assert row["path"] == "data/posters/p1.jpg"  # relative to the project root (cfg.root): portable
    params = row["params"]
    assert params["physical_size"] == {"width_cm": 20.32, "height_cm": 15.24, "width_in": 8.0, "height_in": 6.0}
    assert params["template_sha256"] == hashlib.sha256((poster_env.templates / "small.yaml").read_bytes()).hexdigest()
    assert params["template"] == small_template()
    assert params["files"]["jpeg_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert params["render"]["upscaler"] == "lanczos"
    assert [s["slot"] for s in slots] == list(range(9))
    assert [s["position"] for s in slots] == [s.position for s in template.slots]
    assert len({s["pictures_id"] for s in slots}) == 9  # no repeated picture
    assert [s["pictures_id"] for s in params["slots"]] == [s["pictures_id"] for s in slots]


def test_same_seed_same_bytes_other_seed_other_bytes(poster_env):
    cfg, engine = poster_env.cfg, poster_env.engine
    a, b, c = (generate_posters(cfg, engine, "small", poster_id=pid, seed=seed)[0]
               for pid, seed in (("a", 11), ("b", 11), ("c", 12)))
    assert read(a) == read(b)
    assert read(a.with_suffix(".pdf")) == read(b.with_suffix(".pdf"))
    assert read(a) != read(c)


def test_several_posters_ids_and_seeds(poster_env):
    cfg, engine = poster_env.cfg, poster_env.engine
    paths = generate_posters(cfg, engine, "small", n=3, poster_id="wall", seed=4)
    assert [p.stem for p in paths] == ["wall", "wall-2", "wall-3"]
    with engine.connect() as conn:
        seeds = dict(conn.execute(select(schema.posters.c.poster_id, schema.posters.c.seed)).all())
    assert seeds == {"wall": 4, "wall-2": 5, "wall-3": 6}
    # poster i of a batch is the poster made alone with seed + i
    [alone] = generate_posters(cfg, engine, "small", poster_id="alone", seed=5)
    assert read(alone) == read(paths[1])
    # default ids come from the template and the seed; the default template comes from the config
    assert [p.stem for p in generate_posters(cfg, engine, None, n=2, seed=8)] == ["small-s8", "small-s9"]


def test_regeneration_is_byte_identical(poster_env, caplog):
    cfg, engine = poster_env.cfg, poster_env.engine
    [path] = generate_posters(cfg, engine, "small", poster_id="keep", seed=21)
    jpeg, pdf = read(path), read(path.with_suffix(".pdf"))
    path.unlink()
    path.with_suffix(".pdf").unlink()
    # the template file changes afterwards: the copy stored with the poster is used
    poster_env.write_template("small", small_template(border={"size_px": 2, "colour": "red"}))
    with caplog.at_level(logging.WARNING):
        assert regenerate_poster(cfg, engine, "keep") == path
    assert read(path) == jpeg and read(path.with_suffix(".pdf")) == pdf
    assert "changed since poster was made" in caplog.text
    assert "differs" not in caplog.text


def test_regenerating_the_same_poster_id_replaces_its_rows(poster_env):
    cfg, engine = poster_env.cfg, poster_env.engine
    generate_posters(cfg, engine, "small", poster_id="again", seed=1)
    generate_posters(cfg, engine, "small", poster_id="again", seed=2)
    with engine.connect() as conn:
        posters = conn.execute(select(schema.posters.c.poster_id, schema.posters.c.seed)).all()
        n_slots = len(conn.execute(select(schema.posters_slots)).all())
    assert posters == [("again", 2)] and n_slots == 9


def test_regenerate_unknown_poster(poster_env):
    generate_posters(poster_env.cfg, poster_env.engine, "small", poster_id="known", seed=0)
    with pytest.raises(PosterError, match=r"no poster 'nope' in the database; known posters: known"):
        regenerate_poster(poster_env.cfg, poster_env.engine, "nope")


def test_a_bad_template_writes_nothing(poster_env):
    content = small_template()
    content["slots"][1]["rule"] = {"kind": "clusters", "clusters": [42]}
    poster_env.write_template("bad", content)
    with pytest.raises(PosterTemplateError, match=r"slot 1 \(position 'A'\): unknown cluster 42"):
        generate_posters(poster_env.cfg, poster_env.engine, "bad")
    assert not poster_env.cfg.path("posters").exists() or not list(poster_env.cfg.path("posters").iterdir())
    with poster_env.engine.connect() as conn:
        assert conn.execute(select(schema.posters)).first() is None


def test_configured_upscaler_is_recorded_and_reused(poster_env):
    cfg = poster_env.cfg.with_overrides({"posters": {"upscaler": "lanczos_sharpen"}})
    # 400 px units: the pictures (640x360) are enlarged into the slots
    big = small_template(canvas={"width_px": 1600, "height_px": 1200, "dpi": 100}, unit=[400, 400])
    poster_env.write_template("big", big)
    [path] = generate_posters(cfg, poster_env.engine, "big", poster_id="sharp", seed=0)
    [plain] = generate_posters(poster_env.cfg, poster_env.engine, "big", poster_id="plain", seed=0)
    assert read(path) != read(plain)
    jpeg = read(path)
    regenerate_poster(poster_env.cfg, poster_env.engine, "sharp")  # config says lanczos; the row says sharpen
    assert read(path) == jpeg


def test_preview_draws_the_slots(cfg, tmp_path):
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "small.yaml").write_text(__import__("yaml").safe_dump(small_template()))
    cfg = cfg.with_overrides({"posters": {"templates_dir": str(folder)}})
    path = preview_template(cfg, "small")
    assert path == cfg.path("posters") / "small-preview.jpg"
    template = load_template(cfg, "small")
    with Image.open(path) as image:
        assert image.size == (400, 300) and image.info["dpi"] == (50, 50)
        image = image.convert("RGB")
        for slot in template.slots:
            fraction = background_fraction(image, template.picture_box(slot))
            assert 0.5 < fraction < 0.995, slot.name  # the slot's colour, with its label written on it
    assert SLOT_BACKGROUND == "#ff00ff"


@pytest.mark.parametrize("name", ["heroes_2x2", "grid_4x4_thin"])
def test_shipped_template_at_full_size(poster_env, name):
    cfg = poster_env.cfg.with_overrides({"posters": {"templates_dir": str(poster_env.cfg.source.parent / "posters")}})
    [path] = generate_posters(cfg, poster_env.engine, name, poster_id=name, seed=1)
    template = load_template(cfg, name)
    with poster_env.engine.connect() as conn:
        chosen = dict(conn.execute(select(schema.posters_slots.c.slot, schema.posters_slots.c.pictures_id)
                                   .where(schema.posters_slots.c.poster_id == name)).all())
    assert len(chosen) == len(template.slots) == len(set(chosen.values()))
    with Image.open(path) as image:
        assert image.size == (4320, 2880) and image.info["dpi"] == (150, 150)
        image = image.convert("RGB")
        for slot in template.slots:  # filled: each picture area shows its chosen picture, fitted
            box = template.picture_box(slot)
            expected = fit_picture(cfg.path("collections") / f"{chosen[slot.index]}.jpg", (box[2] - box[0], box[3] - box[1]))
            difference = np.abs(np.asarray(image.crop(box), np.int16) - np.asarray(expected, np.int16)).mean()
            assert difference < 4, slot.name  # JPEG round trip only
    width_pt, height_pt = pdf_page_size_pt(path.with_suffix(".pdf"))
    assert (width_pt / 72, height_pt / 72) == pytest.approx((28.8, 19.2))  # 73.15 x 48.77 cm

# --- one decoder (issue 15, item 4): the poster shows what the thumbnail shows -----------------
REAL_FRAMES = real_frame_paths()


def _rotated_copy(source, path, orientation: int) -> None:
    """The picture stored turned the other way, with the EXIF orientation that shows it upright again."""
    undo = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
    exif = Image.Exif()
    exif[0x0112] = orientation
    with Image.open(source) as image:
        image.convert("RGB").transpose(undo[orientation]).save(path, "JPEG", quality=95, exif=exif)


@pytest.mark.skipif(not REAL_FRAMES, reason="needs the real ISS frames (shared/real/iss_frames)")
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_poster_turns_exif_rotated_real_frames_upright_like_their_thumbnail(tmp_path, orientation):
    from iss.data.images import decode_picture

    upright = tmp_path / "upright.jpg"
    with Image.open(REAL_FRAMES[0]) as image:
        image.convert("RGB").save(upright, "JPEG", quality=95)
    rotated = tmp_path / f"rotated-{orientation}.jpg"
    _rotated_copy(upright, rotated, orientation)
    size = (96, 54)
    poster = np.asarray(fit_picture(rotated, size), dtype=np.int16)
    thumb = decode_picture(rotated, thumb_size=size).thumb.astype(np.int16)
    reference = np.asarray(fit_picture(upright, size), dtype=np.int16)
    assert poster.shape == thumb.shape == (54, 96, 3)
    assert np.abs(poster - reference).mean() < 4  # upright, as the file is shown
    assert np.abs(poster - thumb).mean() < 6  # and the same as its thumbnail (Lanczos vs bilinear)
    assert np.abs(poster - reference[::-1]).mean() > 10  # (the frame is not the same upside down)


@pytest.mark.parametrize("kind", ["rgba", "palette"])
def test_poster_shows_transparent_pixels_as_the_thumbnail_does(tmp_path, kind):
    from iss.data.images import decode_picture

    # magenta under fully transparent pixels, opaque green in the middle third
    pixels = np.zeros((90, 160, 4), np.uint8)
    pixels[..., :3] = (255, 0, 255)
    pixels[:, 53:107] = (0, 200, 0, 255)
    image = Image.fromarray(pixels, "RGBA")
    path = tmp_path / f"{kind}.png"
    if kind == "palette":
        image = image.convert("P")
        image.info["transparency"] = image.getpixel((0, 0))
        image.save(path, transparency=image.getpixel((0, 0)))
    else:
        image.save(path)
    poster = np.asarray(fit_picture(path, (160, 90)), dtype=np.int16)
    thumb = decode_picture(path, thumb_size=(160, 90)).thumb.astype(np.int16)
    assert poster[:, :40].max() == 0 and thumb[:, :40].max() == 0  # black, not the hidden magenta
    assert tuple(poster[45, 80]) == (0, 200, 0)
    assert np.abs(poster - thumb).mean() < 3


def test_a_picture_that_cannot_be_decoded_is_a_poster_error(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"not a picture")
    with pytest.raises(PosterError, match=r"broken\.jpg cannot be decoded: not_image"):
        fit_picture(path, (100, 100))
