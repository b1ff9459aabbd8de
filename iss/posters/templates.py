"""Poster templates: YAML files under ``config/posters/``, validated into a :class:`Template`.

A template is a canvas (pixels, or centimetres plus dpi), a border (size and colour) and a
list of slots. Each slot has an origin and a size (in the template's ``unit``, pixels by
default), a background colour, a position label and a selection rule. Example::

    description: 4x4 grid of 1080x720 units, 30 px borders
    canvas: {width_px: 4320, height_px: 2880, dpi: 150}   # or {width_cm: 60, height_cm: 40, dpi: 300}
    unit: [1080, 720]          # slot origin/size are multiples of this (default [1, 1] = pixels)
    border: {size_px: 30, colour: "#f7f9f9"}
    run: {clustering_type: n2d, version: 1, model_name: demo}   # optional; default: the latest run
    slots:
      - {origin: [0, 0], size: [2, 2], background: "#bed8d4", position: "1",
         rule: {kind: best_of_cluster, clusters: "auto:0"}}
      - {origin: [2, 0], size: [1, 1], background: "#f7f9f9", position: "2",
         rule: {kind: clusters, clusters: [4, 12]}}
      - {origin: [3, 0], size: [1, 1], background: "#f7f9f9", position: "3",
         rule: {kind: pictures, ids: ["20170726-004001", "20170723-231002"]}}

Rules (``rule.kind``, one module each in :mod:`iss.posters.rules`, registered in its ``RULES``):

``clusters``
    a picture drawn at random (seeded) from the listed clusters of the run;
``best_of_cluster``
    the best picture of the listed clusters: the ``shortlist`` (default 10) pictures with the
    highest silhouette, ranked by sharpness x exposure (:mod:`iss.posters.quality`);
``pictures``
    a picture drawn at random (seeded) from explicit picture ids.

``clusters`` is a list of cluster labels or names (``["city lights", 4]``: a name picks the
clusters whose name is it, else contains it; see :mod:`iss.clustering.names`), ``auto`` (the
clusters drawn for this poster, see ``posters.n_clusters_per_poster``) or ``auto:K`` (the K-th of
them, from 0). ``auto`` draws, with the poster's seed, among the run's clusters that are not flat
(median luminance contrast at least ``posters.auto_min_contrast``: blank "live is off" screens
never make a poster) the ones that look most unlike each other, and adds clusters while they hold
fewer pictures than the slots using them. No slot shows a near-duplicate of another slot's picture
(``posters.near_duplicate_distance``). A picture is never used twice
on one poster. A rule may name its own ``run`` (same keys as the template's: ``run_id``,
``clustering_type``, ``version``, ``model_type``, ``model_name``; any subset, the latest
matching run wins; none = the latest run).

Borders: every line of border colour is ``border.size_px`` wide, between slots and along the
canvas edge, and slots of the same size in units have pictures of exactly the same size in pixels:
the unit grid is laid out with whole-pixel tiles, the pixels left over (at most one per unit)
widening the outer border evenly.

Band (optional): a strip along the top or bottom of the canvas, outside the slot grid, with a
title and a caption (the clusters' names, the dates and the places of the pictures shown)::

    band: {position: bottom, height_px: 220, colour: "#17212b", text_colour: "#f7f9f9",
           title: "Earth from the ISS", caption: true}

A template is checked when it is loaded: its keys, types and colours by the Pydantic models
below (:class:`TemplateSchema`, the mechanism of the config schema, with the same messages:
``<file>: slot 2 (position 'C'): background is 'pink-ish'; expected a colour ...``), then its
rules and its geometry (slots inside the canvas, no overlaps); clusters and picture counts are
checked against the database when a poster is generated. Every problem raises
:class:`PosterTemplateError` naming the template file, the slot (index and position label) and
the problem.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import yaml
from PIL import ImageColor
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from iss.config_schema import dotted_key, validation_messages

from iss.posters.rules import RULES, Rule, rule_class, rule_keys

CM_PER_INCH = 2.54
RUN_KEYS = ("run_id", "clustering_type", "version", "model_type", "model_name")


class PosterError(Exception):
    """A poster cannot be generated, previewed or regenerated (missing run, file or row)."""


class PosterTemplateError(PosterError):
    """A template is invalid, or cannot be filled from the database: names file, slot and problem."""


# --- the schema of a template file: keys, types, defaults --------------------------------
def _rgb(value: str) -> tuple[int, int, int]:
    try:
        return tuple(int(c) for c in ImageColor.getrgb(value)[:3])
    except ValueError:
        raise ValueError("expected a colour: '#rrggbb' or a name like 'white'") from None


Colour = Annotated[str, AfterValidator(_rgb)]  # -> (r, g, b)
Number = Annotated[float, Field(strict=True)]  # an int or a float, not a string or a boolean
PositiveNumber = Annotated[float, Field(strict=True, gt=0)]
PositiveInt = Annotated[int, Field(strict=True, gt=0)]
Pair = Annotated[list[Number], Field(min_length=2, max_length=2)]  # [x, y]
PositivePair = Annotated[list[PositiveNumber], Field(min_length=2, max_length=2)]


class _Part(BaseModel):
    """A part of a template: an unknown key is an error (a template is small and written by hand)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)  # defaults too: a colour default -> (r, g, b)


class CanvasSchema(_Part):
    width_px: Optional[PositiveInt] = None
    height_px: Optional[PositiveInt] = None
    width_cm: Optional[PositiveNumber] = None
    height_cm: Optional[PositiveNumber] = None
    dpi: PositiveInt

    @model_validator(mode="after")
    def _one_size(self) -> "CanvasSchema":
        pixels = (self.width_px, self.height_px)
        centimetres = (self.width_cm, self.height_cm)
        if any(v is not None for v in pixels) and any(v is not None for v in centimetres):
            raise ValueError("expected pixels or centimetres, not both pixels and centimetres")
        if None in (pixels if any(v is not None for v in pixels) else centimetres):
            raise ValueError("expected width_px and height_px, or width_cm and height_cm (with dpi)")
        return self

    def size_px(self) -> tuple[int, int]:
        """``(width, height)`` in pixels (centimetres at ``dpi``, rounded)."""
        if self.width_px is not None:
            return self.width_px, self.height_px
        return (int(round(self.width_cm / CM_PER_INCH * self.dpi)), int(round(self.height_cm / CM_PER_INCH * self.dpi)))


class BorderSchema(_Part):
    size_px: Annotated[int, Field(strict=True, ge=0)] = 0
    colour: Colour = "white"


def _text(value: Any) -> Any:
    """A label or description written as a number (``position: 1``) is the text ``"1"``."""
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


class SlotSchema(_Part):
    origin: Pair
    size: PositivePair
    background: Colour = "#f7f9f9"
    position: Annotated[str, BeforeValidator(_text), Field(max_length=32)]  # the posters_slots.position column
    rule: dict  # checked by _parse_rule


class BandSchema(_Part):
    position: Literal["top", "bottom"] = "bottom"
    height_px: PositiveInt
    colour: Colour = "#17212b"
    text_colour: Colour = "#f7f9f9"
    title: str = ""
    caption: bool = True


def _some_slots(slots: list) -> list:
    if not slots:
        raise ValueError("expected a non-empty list of slots")
    return slots


class TemplateSchema(_Part):
    """A template file (see the module docstring)."""

    description: Annotated[str, BeforeValidator(_text)] = ""
    canvas: CanvasSchema
    unit: PositivePair = [1, 1]
    border: BorderSchema = BorderSchema()
    run: Any = None  # checked by _parse_run, as a rule's run
    slots: Annotated[list[SlotSchema], AfterValidator(_some_slots)]
    band: Annotated[Optional[BandSchema], BeforeValidator(lambda value: value or None)] = None  # {} = no band


def _checked(raw: dict, source: str) -> TemplateSchema:
    """``raw`` validated by :class:`TemplateSchema`; a :class:`PosterTemplateError` listing every bad key,
    a slot named by its index and position label."""
    slots = raw.get("slots") if isinstance(raw.get("slots"), list) else []

    def key_name(loc: tuple) -> str:
        if len(loc) > 1 and loc[0] == "slots" and isinstance(loc[1], int):
            item = slots[loc[1]] if loc[1] < len(slots) else None
            label = str(item.get("position")) if isinstance(item, dict) and item.get("position") is not None else "?"
            return f"slot {loc[1]} (position {label!r})" + (f": {dotted_key(loc[2:])}" if len(loc) > 2 else "")
        return dotted_key(loc)

    try:
        return TemplateSchema.model_validate(raw)
    except ValidationError as exc:
        raise PosterTemplateError("\n".join(validation_messages(exc, source, TemplateSchema, key_name))) from None


@dataclass(frozen=True)
class Band:
    """The title and caption strip of a template (see the module docstring)."""

    position: str  # top | bottom
    height_px: int
    colour: tuple[int, int, int]
    text_colour: tuple[int, int, int]
    title: str = ""
    caption: bool = True


@dataclass(frozen=True)
class Slot:
    """A rectangle of the canvas, in pixels, with its label, colour and rule."""

    index: int
    position: str
    x: int
    y: int
    width: int
    height: int
    background: tuple[int, int, int]
    rule: Rule

    @property
    def name(self) -> str:
        """``slot 3 (position '4')``: how errors and logs name the slot."""
        return f"slot {self.index} (position {self.position!r})"


@dataclass(frozen=True)
class Template:
    """A validated poster template.

    Attributes
    ----------
    config_id : str
        The template's name (file stem).
    source : str
        Where it came from (file path, or ``database poster <id>``), named in errors.
    width_px, height_px : int
        Canvas size in pixels.
    dpi : int
        Print resolution; with the pixel size it gives the physical size.
    border_px : int
        Width of every border line.
    border_colour : (int, int, int)
    slots : tuple of Slot
    run : dict
        Default clustering run for the rules (keys among ``RUN_KEYS``; empty = latest run).
    raw : dict
        The parsed YAML, stored with each poster so it can be regenerated from the database.
    sha256 : str
        Hash of the template's content (the file's bytes when loaded from a file).
    """

    config_id: str
    source: str
    width_px: int
    height_px: int
    dpi: int
    border_px: int
    border_colour: tuple[int, int, int]
    slots: tuple[Slot, ...]
    run: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict)
    sha256: str = ""
    description: str = ""
    unit: tuple[float, float] = (1.0, 1.0)
    band: Band | None = None

    def _axis(self, length: int, unit: float, start: int, area: int) -> tuple[float, float]:
        """Offset of unit 0 and pitch (tile + border) of one axis: whole-pixel tiles when the canvas is a
        whole number of units, the leftover pixels split between the two outer borders."""
        n = length / unit
        b = self.border_px
        tile = (area - (n + 1) * b) / n
        if abs(n - round(n)) < 1e-9:
            tile = float(int(tile))
        leftover = area - n * tile - (n + 1) * b
        return start + b + int(leftover // 2), tile + b

    def picture_box(self, slot: Slot) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)`` of the picture inside ``slot``: the slot's units of the grid,
        less one border between units (see the module docstring); the band, if any, is outside the grid."""
        band_h = self.band.height_px if self.band else 0
        top_start = band_h if self.band and self.band.position == "top" else 0
        x0, pitch_x = self._axis(self.width_px, self.unit[0], 0, self.width_px)
        y0, pitch_y = self._axis(self.height_px, self.unit[1], top_start, self.height_px - band_h)
        ux, uy = slot.x / self.unit[0], slot.y / self.unit[1]
        uw, uh = slot.width / self.unit[0], slot.height / self.unit[1]
        left, top = int(round(x0 + ux * pitch_x)), int(round(y0 + uy * pitch_y))
        return (left, top, left + int(round(uw * pitch_x)) - self.border_px,
                top + int(round(uh * pitch_y)) - self.border_px)

    def band_box(self) -> tuple[int, int, int, int] | None:
        """``(left, top, right, bottom)`` of the band, inside the outer border, or None."""
        if not self.band:
            return None
        b = self.border_px
        if self.band.position == "top":
            return b, b, self.width_px - b, self.band.height_px
        return b, self.height_px - self.band.height_px, self.width_px - b, self.height_px - b

    def physical_size(self) -> dict:
        """Printed size at ``dpi``: ``width_cm``, ``height_cm``, ``width_in``, ``height_in`` (2 decimals)."""
        width_in, height_in = self.width_px / self.dpi, self.height_px / self.dpi
        return {"width_cm": round(width_in * CM_PER_INCH, 2), "height_cm": round(height_in * CM_PER_INCH, 2),
                "width_in": round(width_in, 2), "height_in": round(height_in, 2)}

    def describe_size(self) -> str:
        """``4320x2880 px at 150 dpi = 73.15 x 48.77 cm (28.8 x 19.2 in)``."""
        s = self.physical_size()
        return (f"{self.width_px}x{self.height_px} px at {self.dpi} dpi = {s['width_cm']:g} x {s['height_cm']:g} cm "
                f"({s['width_in']:g} x {s['height_in']:g} in)")

    def error(self, problem: str, slot: Slot | None = None) -> PosterTemplateError:
        """A :class:`PosterTemplateError` naming this template's file (and ``slot``)."""
        where = f"{self.source}: {slot.name}: " if slot is not None else f"{self.source}: "
        return PosterTemplateError(where + problem)


# --- locating and loading -------------------------------------------------------
def templates_dir(cfg) -> Path:
    """Folder of the templates: ``posters.templates_dir``, relative to the config file's folder."""
    folder = Path(str(cfg.get("posters.templates_dir"))).expanduser()
    return folder if folder.is_absolute() else Path(cfg.source).parent / folder


def list_templates(cfg) -> list[str]:
    """The config ids of every template file in :func:`templates_dir`."""
    return sorted(p.stem for p in templates_dir(cfg).glob("*.yaml"))


def template_path(cfg, config_id: str) -> Path:
    """The file of ``config_id``: ``<templates_dir>/<config_id>.yaml``, or ``config_id`` itself if it
    is a path to a ``.yaml``/``.yml`` file."""
    as_path = Path(config_id).expanduser()
    if as_path.suffix in (".yaml", ".yml"):
        if not as_path.is_file():
            raise PosterError(f"poster template file {as_path} not found")
        return as_path
    path = templates_dir(cfg) / f"{config_id}.yaml"
    if not path.is_file():
        available = ", ".join(list_templates(cfg)) or "none"
        raise PosterError(f"poster template {config_id!r} not found: no file {path}; available: {available} "
                          f"(set posters.templates_dir or pass a path to a .yaml file)")
    return path


def load_template(cfg, config_id: str) -> Template:
    """Load and validate the template ``config_id`` (a name in :func:`templates_dir`, or a path).

    Raises
    ------
    PosterError
        The file does not exist.
    PosterTemplateError
        It is not valid YAML, or a key, colour, slot or rule is wrong.
    """
    path = template_path(cfg, config_id)
    content = path.read_bytes()
    try:
        raw = yaml.safe_load(content.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PosterTemplateError(f"{path}: not valid YAML: {exc}") from exc
    return parse_template(raw, config_id=path.stem, source=str(path), sha256=hashlib.sha256(content).hexdigest())


def content_hash(raw: dict) -> str:
    """sha256 of a template mapping's canonical JSON (used when there is no file)."""
    return hashlib.sha256(json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# --- validation -----------------------------------------------------------------
def _to_px(value: float, unit: float, what: str, fail) -> int:
    px = value * unit
    if abs(px - round(px)) > 1e-6:
        raise fail(f"{what} is {px:g} px, not a whole number of pixels (check the value and the template's unit)")
    return int(round(px))


def _parse_run(value: Any, what: str, fail) -> dict:
    if value in (None, "latest"):
        return {}
    if not isinstance(value, dict):
        raise fail(f"{what} should be a mapping with keys among {', '.join(RUN_KEYS)}, or 'latest'; got {value!r}")
    unknown = sorted(set(value) - set(RUN_KEYS))
    if unknown:
        raise fail(f"{what} has unknown keys {unknown}; expected keys among {', '.join(RUN_KEYS)}")
    return {k: value[k] for k in RUN_KEYS if value.get(k) is not None}


def _parse_rule(value: Any, fail) -> Rule:
    """What every rule shares (a mapping, known keys, a registered kind, ``run``); the rest is its kind's."""
    kinds = " | ".join(RULES)
    if not isinstance(value, dict):
        raise fail(f"rule should be a mapping with a 'kind' ({kinds}), got {value!r}")
    known = rule_keys()
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise fail(f"rule has unknown keys {unknown}; expected keys among {known}")
    kind = value.get("kind")
    if kind not in RULES:
        raise fail(f"rule kind {kind!r} is not one of {kinds}")
    run = _parse_run(value.get("run"), "rule run", fail) if "run" in value else None
    return rule_class(kind).parse(kind, value, run, fail)


def parse_template(raw: Any, config_id: str, source: str, sha256: str | None = None) -> Template:
    """Validate a parsed template mapping into a :class:`Template`.

    Parameters
    ----------
    raw : dict
        The YAML content.
    config_id : str
        The template's name.
    source : str
        Named in every error (the file path).
    sha256 : str, optional
        Content hash; default the hash of ``raw``'s canonical JSON.
    """
    def fail_top(problem: str) -> PosterTemplateError:
        return PosterTemplateError(f"{source}: {problem}")

    if not isinstance(raw, dict):
        raise fail_top(f"expected a mapping with keys among {', '.join(TemplateSchema.model_fields)}, "
                       f"got {type(raw).__name__}")
    if len(config_id) > 64:
        raise fail_top(f"template name {config_id!r} is longer than 64 characters (the posters.config_id column)")
    checked = _checked(raw, source)
    dpi = checked.canvas.dpi
    width_px, height_px = checked.canvas.size_px()
    unit = (float(checked.unit[0]), float(checked.unit[1]))
    border_px, border_colour = checked.border.size_px, checked.border.colour
    run = _parse_run(raw.get("run"), "run", fail_top)

    slots: list[Slot] = []
    seen_positions: dict[str, int] = {}
    for index, item in enumerate(checked.slots):
        label = item.position

        def fail(problem: str, index=index, label=label) -> PosterTemplateError:
            return PosterTemplateError(f"{source}: slot {index} (position {label!r}): {problem}")

        if label in seen_positions:
            raise fail(f"position label {label!r} is already used by slot {seen_positions[label]}; labels must be "
                       f"unique")
        seen_positions[label] = index
        (ox, oy), (sw, sh) = item.origin, item.size
        x, y = _to_px(ox, unit[0], "origin x", fail), _to_px(oy, unit[1], "origin y", fail)
        w, h = _to_px(sw, unit[0], "width", fail), _to_px(sh, unit[1], "height", fail)
        if x < 0 or y < 0 or x + w > width_px or y + h > height_px:
            raise fail(f"is outside the canvas: it spans x {x}..{x + w}, y {y}..{y + h} px but the canvas is "
                       f"{width_px}x{height_px} px")
        if w <= 2 * border_px or h <= 2 * border_px:
            raise fail(f"is {w}x{h} px, too small for a {border_px} px border on each side")
        slot = Slot(index=index, position=label, x=x, y=y, width=w, height=h, background=item.background,
                    rule=_parse_rule(item.rule, fail))
        for other in slots:  # a handful of slots: pairwise checks are cheap and name both slots
            if x < other.x + other.width and other.x < x + w and y < other.y + other.height and other.y < y + h:
                raise fail(f"overlaps {other.name}: x {x}..{x + w}, y {y}..{y + h} px against "
                           f"x {other.x}..{other.x + other.width}, y {other.y}..{other.y + other.height} px")
        slots.append(slot)

    band = _band(checked.band, height_px, border_px, fail_top) if checked.band else None
    return Template(config_id=config_id, source=source, width_px=width_px, height_px=height_px, dpi=dpi,
                    border_px=border_px, border_colour=border_colour, slots=tuple(slots), run=run, raw=raw,
                    sha256=sha256 or content_hash(raw), description=checked.description, unit=unit, band=band)


def _band(value: BandSchema, height_px: int, border_px: int, fail) -> Band:
    height = value.height_px
    if not 2 * border_px < height < height_px // 2:
        raise fail(f"band.height_px is {height!r}; expected an integer between {2 * border_px + 1} and "
                   f"{height_px // 2 - 1} (more than two borders, less than half the canvas)")
    return Band(position=value.position, height_px=height, colour=value.colour, text_colour=value.text_colour,
                title=value.title, caption=value.caption)
