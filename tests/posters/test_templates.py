"""Templates: the shipped layouts, units and borders, and each invalid template's error message."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from iss.config import PROJ_ROOT
from iss.posters.templates import (PosterError, PosterTemplateError, list_templates, load_template, parse_template,
                                   template_path)

from .helpers import small_template

SHIPPED = ["grid_4x4", "grid_4x4_thin", "heroes_2x2"]


@pytest.fixture
def tcfg(cfg, tmp_path):
    folder = tmp_path / "templates"
    folder.mkdir()
    return cfg.with_overrides({"posters": {"templates_dir": str(folder)}}), folder


def write(folder: Path, name: str, content) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def load_error(tcfg, content, name="bad") -> str:
    cfg, folder = tcfg
    path = write(folder, name, content)
    with pytest.raises(PosterTemplateError) as info:
        load_template(cfg, name)
    message = str(info.value)
    assert str(path) in message, message  # every error names the template file
    return message


# --- shipped templates -----------------------------------------------------------
def test_shipped_templates_are_found_through_the_config(cfg):
    # cfg is rooted in tmp_path, but templates_dir is relative to the config file's folder
    assert set(SHIPPED) <= set(list_templates(cfg))
    assert template_path(cfg, "grid_4x4") == PROJ_ROOT / "config" / "posters" / "grid_4x4.yaml"
    assert cfg.get("posters.default_template") in list_templates(cfg)


@pytest.mark.parametrize("name, border, n_slots", [("grid_4x4", 30, 16), ("grid_4x4_thin", 15, 16),
                                                   ("heroes_2x2", 30, 10)])
def test_shipped_template_geometry(cfg, name, border, n_slots):
    template = load_template(cfg, name)
    assert (template.width_px, template.height_px, template.dpi) == (4320, 2880, 150)
    assert template.border_px == border and len(template.slots) == n_slots
    # the slots tile the whole canvas (no gap, no overlap: overlaps are rejected at load)
    assert sum(s.width * s.height for s in template.slots) == 4320 * 2880
    assert template.physical_size() == {"width_cm": 73.15, "height_cm": 48.77, "width_in": 28.8, "height_in": 19.2}
    # every border line between two slots is exactly one border wide; along the canvas edge at least
    # one border, plus at most one pixel per unit left over by whole-pixel tiles, split evenly
    boxes = [template.picture_box(s) for s in template.slots]
    left, top = min(b[0] for b in boxes), min(b[1] for b in boxes)
    right, bottom = 4320 - max(b[2] for b in boxes), 2880 - max(b[3] for b in boxes)
    assert border <= left <= border + 2 and border <= top <= border + 2 and abs(left - right) <= 1
    assert abs(top - bottom) <= 1
    gaps = {b[0] - a[2] for a in boxes for b in boxes if b[0] > a[2] and a[1] == b[1]}
    gaps |= {b[1] - a[3] for a in boxes for b in boxes if b[1] > a[3] and a[0] == b[0]}
    assert min(gaps) == border
    # tiles of one unit size are equal to the pixel (the outer ones were 15 px smaller before)
    by_units: dict = {}
    for slot, box in zip(template.slots, boxes):
        by_units.setdefault((slot.width, slot.height), set()).add((box[2] - box[0], box[3] - box[1]))
    assert all(len(sizes) == 1 for sizes in by_units.values()), by_units


def test_heroes_template_has_two_2x2_heroes(cfg):
    template = load_template(cfg, "heroes_2x2")
    heroes = [s for s in template.slots if (s.width, s.height) == (2160, 1440)]
    units = [s for s in template.slots if (s.width, s.height) == (1080, 720)]
    assert [(h.x, h.y) for h in heroes] == [(0, 0), (2160, 1440)]
    assert len(units) == 8
    assert {h.rule.kind for h in heroes} == {"best_of_cluster"}
    assert [h.rule.auto for h in heroes] == [0, 1]


def test_picture_box_equal_tiles_one_border_apart(cfg):
    template = load_template(cfg, "grid_4x4")
    first, second = template.slots[0], template.slots[1]
    # 4320 = 4 x 1042 + 5 x 30 + 2 and 2880 = 4 x 682 + 5 x 30 + 2: the 2 spare pixels widen the outer border
    assert template.picture_box(first) == (31, 31, 31 + 1042, 31 + 682)
    assert template.picture_box(second) == (31 + 1042 + 30, 31, 31 + 2 * 1042 + 30, 31 + 682)


def test_canvas_in_centimetres_and_units(tcfg):
    cfg, folder = tcfg
    content = small_template(canvas={"width_cm": 20.32, "height_cm": 15.24, "dpi": 50})
    write(folder, "cm", content)
    template = load_template(cfg, "cm")
    assert (template.width_px, template.height_px) == (400, 300)
    assert template.describe_size() == "400x300 px at 50 dpi = 20.32 x 15.24 cm (8 x 6 in)"
    hero = template.slots[0]
    assert (hero.x, hero.y, hero.width, hero.height) == (0, 0, 200, 200)
    assert template.config_id == "cm" and len(template.sha256) == 64


def test_template_given_as_a_path(tcfg, tmp_path):
    cfg, _ = tcfg
    path = write(tmp_path, "elsewhere", small_template())
    assert load_template(cfg, str(path)).config_id == "elsewhere"


def test_missing_template_names_the_available_ones(tcfg):
    cfg, folder = tcfg
    write(folder, "one", small_template())
    with pytest.raises(PosterError, match=r"'nope' not found.*available: one"):
        load_template(cfg, "nope")


# --- invalid templates: each error names the file, the slot and the problem ----------
def test_overlapping_slots(tcfg):
    content = small_template()
    content["slots"][1]["origin"] = [1, 0]  # slot A now overlaps the hero
    message = load_error(tcfg, content)
    assert "slot 1 (position 'A')" in message and "overlaps slot 0 (position 'hero')" in message


def test_slot_outside_the_canvas(tcfg):
    content = small_template()
    content["slots"][8]["size"] = [2, 1]  # H at x=300 would end at 500 > 400
    message = load_error(tcfg, content)
    assert "slot 8 (position 'H')" in message and "outside the canvas" in message and "400x300" in message


def test_negative_origin_is_outside_the_canvas(tcfg):
    content = small_template()
    content["slots"][0]["origin"] = [-1, 0]
    assert "outside the canvas" in load_error(tcfg, content)


@pytest.mark.parametrize("change, expected", [
    ({"background": "not-a-colour"}, "background is 'not-a-colour'; expected a colour: '#rrggbb' or a name"),
    ({"rule": {"kind": "favourites"}}, "rule kind 'favourites' is not one of"),
    ({"rule": {"kind": "clusters", "clusters": []}}, "non-empty list"),
    ({"rule": {"kind": "clusters", "clusters": "some"}}, "'auto' or 'auto:K'"),
    ({"rule": {"kind": "pictures"}}, "needs a non-empty list 'ids'"),
    ({"rule": {"kind": "clusters", "clusters": [1], "colour": "red"}}, "unknown keys ['colour']"),
    ({"rule": {"kind": "best_of_cluster", "clusters": [1], "shortlist": 0}}, "shortlist should be a positive"),
    ({"origin": [3.005, 0]}, "not a whole number of pixels"),
    ({"size": [1]}, "size is [1]; expected a list of 2 items, got 1"),
    ({"origin": ["a", 0]}, "origin[0] is 'a'; expected a valid number"),
    ({"rule": "best"}, "rule is 'best'; expected a valid dictionary"),
    ({"position": "hero"}, "position label 'hero' is already used by slot 0"),
    ({"extra": 1}, "extra is not a known key; expected keys among origin, size, background, position, rule"),
    ({"position": "x" * 33}, f"position is {'x' * 33!r}; expected at most 32 characters, got 33"),
])
def test_bad_slot_is_named_with_its_problem(tcfg, change, expected):
    content = small_template()
    content["slots"][2].update(change)
    message = load_error(tcfg, content)
    assert "slot 2 (position" in message and expected in message


def test_slot_too_small_for_its_border(tcfg):
    content = small_template(border={"size_px": 60, "colour": "black"})
    message = load_error(tcfg, content)
    assert "slot 1 (position 'A')" in message and "too small for a 60 px border" in message


@pytest.mark.parametrize("change, expected", [
    ({"canvas": {"width_px": 400, "dpi": 50}},
     "canvas is {'width_px': 400, 'dpi': 50}; expected width_px and height_px, or width_cm and height_cm"),
    ({"canvas": {"width_px": 400, "height_px": 300}}, "canvas.dpi is missing"),
    ({"canvas": {"width_px": 400, "height_px": 300, "dpi": 1.5}}, "canvas.dpi is 1.5; expected a valid integer"),
    ({"canvas": {"width_px": 400, "height_px": 300, "width_cm": 3, "dpi": 50}}, "both pixels and centimetres"),
    ({"slots": []}, "slots is []; expected a non-empty list of slots"),
    ({"border": {"size_px": 3, "color": "red"}}, "border.color is not a known key; expected keys among size_px, colour"),
    ({"border": {"size_px": -1}}, "border.size_px is -1; expected greater than or equal to 0"),
    ({"band": {"position": "left", "height_px": 40}}, "band.position is 'left'; expected 'top' or 'bottom'"),
    ({"run": {"model": "x"}}, "run has unknown keys ['model']"),
    ({"colours": {}}, "colours is not a known key; expected keys among description, canvas, unit, border, run"),
])
def test_bad_template_level_keys(tcfg, change, expected):
    assert expected in load_error(tcfg, small_template(**change))


def test_not_yaml(tcfg):
    cfg, folder = tcfg
    (folder / "broken.yaml").write_text("slots: [\n")
    with pytest.raises(PosterTemplateError, match=r"broken\.yaml: not valid YAML"):
        load_template(cfg, "broken")


def test_parse_template_keeps_the_raw_mapping_for_regeneration():
    raw = small_template()
    template = parse_template(copy.deepcopy(raw), config_id="t", source="mem")
    assert template.raw == raw
    again = parse_template(template.raw, config_id="t", source="mem")
    assert again == template


def test_band_takes_its_strip_and_tiles_stay_equal(tcfg):
    cfg, folder = tcfg
    slots = [{"origin": [i % 4, i // 4], "size": [1, 1], "position": str(i), "rule": {"kind": "clusters"}}
             for i in range(8)]
    write(folder, "banded", {"canvas": {"width_px": 4000, "height_px": 1800, "dpi": 100}, "unit": [1000, 900],
                             "border": {"size_px": 20}, "band": {"position": "bottom", "height_px": 200, "title": "Earth"},
                             "slots": slots})
    template = load_template(cfg, "banded")
    boxes = [template.picture_box(s) for s in template.slots]
    assert {(b[2] - b[0], b[3] - b[1]) for b in boxes} == {((4000 - 5 * 20) // 4, (1600 - 3 * 20) // 2)}
    band = template.band_box()
    assert band[1] >= max(b[3] for b in boxes) + 20 and band[3] == 1800 - 20
    assert template.band.title == "Earth" and template.band.caption
    message = load_error(tcfg, {"canvas": {"width_px": 400, "height_px": 300, "dpi": 50}, "unit": [100, 100],
                                "band": {"height_px": 290}, "slots": slots[:1]})
    assert "band.height_px is 290; expected an integer between 1 and 149" in message


def test_a_bad_template_lists_every_bad_key_at_once_as_the_config_does(tcfg):
    """Issue 16: templates are checked by Pydantic models, as the config is: one line per bad key, naming the
    file, the key (a slot by its index and label), the value and what was expected."""
    content = small_template(border={"size_px": "thin", "colour": "chartreuse-ish"})
    content["slots"][2]["background"] = 7
    content["slots"][3]["size"] = [1, 0]
    lines = load_error(tcfg, content).splitlines()
    path = tcfg[1] / "bad.yaml"
    assert lines == [
        f"{path}: border.size_px is 'thin'; expected a valid integer",
        f"{path}: border.colour is 'chartreuse-ish'; expected a colour: '#rrggbb' or a name like 'white'",
        f"{path}: slot 2 (position 'B'): background is 7; expected a valid string",
        f"{path}: slot 3 (position 'C'): size[1] is 0; expected greater than 0",
    ]
