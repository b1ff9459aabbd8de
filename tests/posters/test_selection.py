"""Selection of one picture per slot from a clustering run (on SQLite and MariaDB)."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from iss.db import schema
from iss.posters.selection import select_pictures
from iss.posters.templates import PosterTemplateError, load_template

from .helpers import insert_collection, small_template


def picks(selection) -> dict[str, str]:
    return {c.slot.position: c.pictures_id for c in selection.choices}


def cluster_of(pid: str) -> int:
    return int(pid.split("-")[1]) // 10


def test_each_rule_draws_from_its_pool_without_repeats(poster_env):
    template = load_template(poster_env.cfg, "small")
    for seed in range(12):
        selection = select_pictures(poster_env.cfg, poster_env.engine, template, seed)
        chosen = picks(selection)
        assert list(chosen) == [s.position for s in template.slots]  # one per slot, in slot order
        assert len(set(chosen.values())) == len(chosen)  # never twice on a poster
        assert cluster_of(chosen["hero"]) == 0
        assert cluster_of(chosen["A"]) == cluster_of(chosen["B"]) == 1
        assert chosen["C"] in {"pic-20", "pic-21"}
        assert {cluster_of(chosen["E"]), cluster_of(chosen["F"])} <= {2, 3}
        auto = selection.auto_clusters[poster_env.run_id]
        assert len(auto) >= 2 and len(set(auto)) == len(auto)
        assert cluster_of(chosen["D"]) in auto and cluster_of(chosen["G"]) in auto
        assert cluster_of(chosen["H"]) == auto[0]
        assert selection.run_id == poster_env.run_id


def test_same_seed_same_pictures_other_seed_other_pictures(poster_env):
    template = load_template(poster_env.cfg, "small")
    first = picks(select_pictures(poster_env.cfg, poster_env.engine, template, 5))
    assert picks(select_pictures(poster_env.cfg, poster_env.engine, template, 5)) == first
    others = [picks(select_pictures(poster_env.cfg, poster_env.engine, template, s)) for s in (6, 7, 8)]
    assert any(other != first for other in others)


def test_best_of_cluster_takes_top_silhouettes_then_quality(poster_env):
    # silhouettes in cluster 0: pic-00 0.9, pic-01 0.8, pic-02 0.7, pic-03 0.6 (blurred), pic-04 0.5 (dark), ...
    slot = {"origin": [0, 0], "size": [4, 3], "background": "white", "position": "only"}
    for shortlist, allowed in ((1, {"pic-00"}), (5, {"pic-00", "pic-01", "pic-02"})):
        rule = {"kind": "best_of_cluster", "clusters": [0], "shortlist": shortlist}
        poster_env.write_template("best", small_template(slots=[{**slot, "rule": rule}]))
        template = load_template(poster_env.cfg, "best")
        choice = select_pictures(poster_env.cfg, poster_env.engine, template, 0).choices[0]
        assert choice.pictures_id in allowed
        assert choice.detail["shortlist"] == shortlist
        assert choice.detail["quality_source"] == "thumbnail"
        # deterministic: no seed involved
        assert select_pictures(poster_env.cfg, poster_env.engine, template, 99).choices[0].pictures_id == \
            choice.pictures_id


def test_best_of_cluster_without_cache_decodes_the_pictures(poster_env, tmp_path):
    cfg = poster_env.cfg.with_overrides({"paths": {"cache": str(tmp_path / "no_cache")}})
    rule = {"kind": "best_of_cluster", "clusters": [0], "shortlist": 5}
    slot = {"origin": [0, 0], "size": [4, 3], "background": "white", "position": "only", "rule": rule}
    poster_env.write_template("best", small_template(slots=[slot]))
    choice = select_pictures(cfg, poster_env.engine, load_template(cfg, "best"), 0).choices[0]
    assert choice.detail["quality_source"] == "decode"
    assert choice.pictures_id in {"pic-00", "pic-01", "pic-02"}


def test_picture_without_file_is_replaced(poster_env, caplog):
    # a picture in the database whose file is gone, with the best silhouette of cluster 0
    with poster_env.engine.begin() as conn:
        conn.execute(schema.pictures.insert().values(
            pictures_id="ghost", filename="ghost.jpg", width=640, height=360, file_size=1, file_mtime=0.0,
            ingested_at=dt.datetime(2024, 1, 1)))
        conn.execute(schema.pictures_embedding.insert().values(
            run_id=poster_env.run_id, pictures_id="ghost", pictures_x=0.0, pictures_y=0.0, label=0, silhouette=0.99))
    rule = {"kind": "best_of_cluster", "clusters": [0], "shortlist": 1}
    slot = {"origin": [0, 0], "size": [4, 3], "background": "white", "position": "only", "rule": rule}
    poster_env.write_template("best", small_template(slots=[slot]))
    with caplog.at_level(logging.WARNING):
        choice = select_pictures(poster_env.cfg, poster_env.engine, load_template(poster_env.cfg, "best"), 0)
    assert choice.choices[0].pictures_id == "pic-00"
    assert "ghost" in caplog.text and "no file" in caplog.text


def test_latest_run_by_default_or_the_named_one(poster_env):
    later = insert_collection(poster_env.engine, poster_env.collection, model_name="later",
                              created_at=dt.datetime(2024, 6, 1))
    template = load_template(poster_env.cfg, "small")
    assert select_pictures(poster_env.cfg, poster_env.engine, template, 0).run_id == later
    named = small_template(run={"clustering_type": "n2d", "version": 1, "model_name": "test"})
    poster_env.write_template("named", named)
    template = load_template(poster_env.cfg, "named")
    assert select_pictures(poster_env.cfg, poster_env.engine, template, 0).run_id == poster_env.run_id
    assert select_pictures(poster_env.cfg, poster_env.engine, template, 0, run_id=later).run_id == later


# --- errors against the database: name the template, the slot and the problem -----------
def selection_error(poster_env, content) -> str:
    path = poster_env.write_template("bad", content)
    template = load_template(poster_env.cfg, "bad")
    with pytest.raises(PosterTemplateError) as info:
        select_pictures(poster_env.cfg, poster_env.engine, template, 0)
    message = str(info.value)
    assert str(path) in message, message
    return message


def test_unknown_cluster(poster_env):
    content = small_template()
    content["slots"][1]["rule"] = {"kind": "clusters", "clusters": [1, 9]}
    message = selection_error(poster_env, content)
    assert "slot 1 (position 'A')" in message
    assert "unknown cluster 9" in message and "has clusters 0, 1, 2, 3" in message


def test_too_few_pictures(poster_env):
    # 12 slots drawing from cluster 1, which has 10 pictures
    slots = [{"origin": [i % 4, i // 4], "size": [1, 1], "background": "white", "position": f"p{i}",
              "rule": {"kind": "clusters", "clusters": [1]}} for i in range(12)]
    message = selection_error(poster_env, small_template(slots=slots))
    assert "too few pictures" in message and "matches 10 picture(s)" in message
    assert "(position 'p10')" in message and "already used by slot(s)" in message


def test_too_few_explicit_ids(poster_env):
    content = small_template()
    content["slots"][1]["rule"] = {"kind": "pictures", "ids": ["pic-20"]}  # slot C also may take pic-20
    content["slots"][3]["rule"] = {"kind": "pictures", "ids": ["pic-20"]}
    message = selection_error(poster_env, content)
    assert "too few pictures" in message and "slot 3 (position 'C')" in message


def test_unknown_picture_id(poster_env):
    content = small_template()
    content["slots"][3]["rule"] = {"kind": "pictures", "ids": ["pic-20", "nope"]}
    message = selection_error(poster_env, content)
    assert "slot 3 (position 'C')" in message and "unknown picture id nope" in message


def test_unknown_run(poster_env):
    message = selection_error(poster_env, small_template(run={"model_name": "nope"}))
    assert "no clustering run matches model_name=nope" in message and f"run {poster_env.run_id} (n2d v1" in message


def test_rule_run_unknown_names_the_slot(poster_env):
    content = small_template()
    content["slots"][2]["rule"] = {"kind": "clusters", "clusters": [1], "run": {"version": 7}}
    message = selection_error(poster_env, content)
    assert "slot 2 (position 'B')" in message and "version=7" in message


def test_auto_index_beyond_the_run_clusters(poster_env):
    content = small_template()
    content["slots"][8]["rule"] = {"kind": "best_of_cluster", "clusters": "auto:6"}
    message = selection_error(poster_env, content)
    assert "slot 8 (position 'H')" in message and "too few clusters" in message and "has 4" in message


def test_flat_clusters_are_never_drawn_for_auto_rules(poster_env):
    run_id = insert_collection(poster_env.engine, poster_env.collection, model_name="flat",
                               created_at=dt.datetime(2024, 6, 1), with_flat=True)  # cluster 4: blank screens
    template = load_template(poster_env.cfg, "small")
    drawn = set()
    for seed in range(15):
        selection = select_pictures(poster_env.cfg, poster_env.engine, template, seed)
        assert selection.run_id == run_id
        drawn.update(selection.auto_clusters[run_id])
        assert selection.cluster_contrast[run_id][4] < 0.06 < min(
            selection.cluster_contrast[run_id][c] for c in range(4))
    assert 4 not in drawn and drawn == {0, 1, 2, 3}
    # explicit rules may still use a flat cluster, and the filter can be turned off
    cfg = poster_env.cfg.with_overrides({"posters": {"auto_min_contrast": 0}})
    drawn_unfiltered = set()
    for seed in range(15):
        drawn_unfiltered.update(select_pictures(cfg, poster_env.engine, template, seed).auto_clusters[run_id])
    assert 4 in drawn_unfiltered


def test_flat_clusters_are_used_when_the_others_are_too_few(poster_env, caplog):
    run_id = insert_collection(poster_env.engine, poster_env.collection, model_name="flat",
                               created_at=dt.datetime(2024, 6, 1), with_flat=True)
    cfg = poster_env.cfg.with_overrides({"posters": {"n_clusters_per_poster": 5}})  # 4 lively clusters + 1 flat
    with caplog.at_level(logging.WARNING):
        selection = select_pictures(cfg, poster_env.engine, load_template(cfg, "small"), 0)
    assert sorted(selection.auto_clusters[run_id]) == [0, 1, 2, 3, 4]
    assert selection.auto_clusters[run_id][-1] == 4  # drawn last
    assert "flat cluster(s) [4]" in caplog.text
