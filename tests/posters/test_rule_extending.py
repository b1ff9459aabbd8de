"""The README's recipe "add a poster rule": one module (``newest_rule.py``) plus one line in ``RULES``,
then templates validate the new kind and posters are made with it."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from iss.db import schema
from iss.posters.render import generate_posters
from iss.posters.rules import RULES
from iss.posters.selection import select_pictures
from iss.posters.templates import PosterTemplateError, load_template

from .helpers import small_template


@pytest.fixture
def newest(monkeypatch):
    # the one registry line, as the README shows it (monkeypatch removes it after the test)
    monkeypatch.setitem(RULES, "newest", "tests.posters.newest_rule:NewestRule")


def with_newest_slot(rule: dict) -> dict:
    content = small_template()
    content["slots"][1]["rule"] = rule  # slot "A"
    return content


def test_a_registered_rule_fills_its_slot(newest, poster_env):
    poster_env.write_template("newest", with_newest_slot({"kind": "newest", "clusters": [1]}))
    template = load_template(poster_env.cfg, "newest")
    assert template.slots[1].rule.describe() == "newest of 1"
    for seed in (0, 1):
        chosen = {c.slot.position: c for c in select_pictures(poster_env.cfg, poster_env.engine, template, seed).choices}
        assert chosen["A"].pictures_id == "pic-19"  # cluster 1 is pic-10 ... pic-19
        assert chosen["A"].detail["rule"] == "newest of 1"
        assert chosen["B"].pictures_id != "pic-19"  # a picture is never used twice

    [path] = generate_posters(poster_env.cfg, poster_env.engine, "newest", poster_id="newest", seed=2)
    assert path.is_file()
    with poster_env.engine.connect() as conn:
        slot_a = conn.execute(select(schema.posters_slots.c.pictures_id)
                              .where(schema.posters_slots.c.position == "A")).scalar_one()
    assert slot_a == "pic-19"


def test_the_inherited_checks_and_the_list_of_kinds_apply(newest, poster_env):
    poster_env.write_template("bad", with_newest_slot({"kind": "newest", "clusters": "some"}))
    with pytest.raises(PosterTemplateError, match="slot 1 .*'auto' or 'auto:K'"):
        load_template(poster_env.cfg, "bad")
    poster_env.write_template("bad", with_newest_slot({"kind": "oldest", "clusters": [1]}))
    with pytest.raises(PosterTemplateError, match=re.escape("rule kind 'oldest' is not one of clusters | "
                                                            "best_of_cluster | pictures | newest") + "$"):
        load_template(poster_env.cfg, "bad")


def test_without_its_line_the_kind_is_refused(poster_env):
    poster_env.write_template("newest", with_newest_slot({"kind": "newest", "clusters": [1]}))
    with pytest.raises(PosterTemplateError, match=re.escape("rule kind 'newest' is not one of clusters | "
                                                            "best_of_cluster | pictures") + "$"):
        load_template(poster_env.cfg, "newest")
