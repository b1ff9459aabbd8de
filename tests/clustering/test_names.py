"""Cluster names: automatic descriptions from the pictures (synthetic and real frames), names given by
hand stored on SQLite and MySQL, dropped when the run is re-run, and found by poster rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import update

from iss.clustering.names import (
    ClusterNameError,
    cluster_names,
    describe_cluster,
    ensure_cluster_names,
    find_clusters,
    name_cluster,
    picture_measures,
    unique_names,
)
from iss.data.cache import ImageCache
from iss.db import schema
from tests.synthetic import make_synthetic_run, synthetic_thumbs

REAL_FRAMES = Path("/work/shared/real/iss_frames")


def _describe(thumbs, is_day=None, places=None):
    n = len(thumbs)
    return describe_cluster(picture_measures(thumbs), is_day or [None] * n, places or [None] * n)


def test_descriptions_say_what_the_pictures_share():
    night = synthetic_thumbs(np.full(30, 2))  # kind 2: dark ground with warm city lights
    name, info = _describe(night, [False] * 25 + [True] * 5, ["Asia"] * 20 + ["Europe"] * 10)
    assert name == "dark, city lights, orange, night, over Asia"
    assert info["day_share"] == pytest.approx(5 / 30, abs=1e-4) and info["place_share"] == pytest.approx(20 / 30, abs=1e-4)
    flat = np.full((10, 54, 96, 3), (30, 60, 200), np.uint8)
    assert _describe(flat)[0] == "dim, flat, blue"
    assert _describe(np.zeros((4, 54, 96, 3), np.uint8))[0] == "dark, flat"
    # a place shared by too few located pictures is not named; unknown day/night says nothing
    assert "over" not in _describe(night, places=["Asia", "Europe", "Africa"] * 10)[0]
    assert unique_names({0: "dark", 1: "bright", 2: "dark"}) == {0: "dark", 1: "bright", 2: "dark (2)"}


@pytest.mark.skipif(not REAL_FRAMES.is_dir(), reason="needs the real ISS frames in /work/shared/real")
def test_real_frames_get_telling_descriptions():
    from iss.data.images import decode_picture

    frames = sorted(REAL_FRAMES.glob("*.jpg"))
    thumbs = np.stack([decode_picture(f, (48, 27), (96, 54)).thumb for f in frames])
    measures = picture_measures(thumbs)
    brightness = measures["brightness"]
    darkest, brightest = np.argsort(brightness)[:6], np.argsort(brightness)[-6:]
    dark_name = describe_cluster({k: v[darkest] for k, v in measures.items()}, [None] * 6, [None] * 6)[0]
    bright_name = describe_cluster({k: v[brightest] for k, v in measures.items()}, [None] * 6, [None] * 6)[0]
    assert dark_name.split(", ")[0] in ("dark", "dim") and "dark" not in bright_name
    assert dark_name != bright_name


def test_names_are_stored_given_and_found(cfg, engine):
    run = make_synthetic_run(cfg, engine, n_pictures=40, n_clusters=3)
    cache = ImageCache(cfg.path("cache"))
    names = ensure_cluster_names(cache, engine, run.run_id)
    assert sorted(names) == [0, 1, 2] and all(v["name"] and not v["given"] for v in names.values())
    assert ensure_cluster_names(cache, engine, run.run_id) == names  # described once

    names = name_cluster(cache, engine, run.run_id, 1, "  Night   over Asia ")
    assert names[1]["name"] == "Night over Asia" and names[1]["given"] and names[1]["auto_name"]
    assert cluster_names(engine, run.run_id)[1]["name"] == "Night over Asia"
    assert find_clusters(names, "night over asia") == [1] and find_clusters(names, "asia") == [1]
    assert find_clusters(names, "nothing like it") == []
    assert name_cluster(cache, engine, run.run_id, 1, "")[1]["name"] == names[1]["auto_name"]  # back to auto

    with pytest.raises(ClusterNameError, match="has no cluster 7; its clusters are 0, 1, 2"):
        name_cluster(cache, engine, run.run_id, 7, "x")
    with pytest.raises(ClusterNameError, match="clustering run 99 does not exist"):
        name_cluster(cache, engine, 99, 0, "x")
    with pytest.raises(ClusterNameError, match="at most 255"):
        name_cluster(cache, engine, run.run_id, 0, "x" * 300)


def test_a_rerun_drops_the_names_given_for_the_old_clusters(cfg, engine, caplog):
    import datetime as dt

    run = make_synthetic_run(cfg, engine, n_pictures=30, n_clusters=2)
    cache = ImageCache(cfg.path("cache"))
    name_cluster(cache, engine, run.run_id, 0, "mine")
    with engine.begin() as conn:  # what re-running the clustering version does to the run row
        conn.execute(update(schema.clustering_runs).where(schema.clustering_runs.c.run_id == run.run_id)
                     .values(created_at=dt.datetime(2030, 1, 1)))
    names = ensure_cluster_names(cache, engine, run.run_id)
    assert not names[0]["given"] and "dropping the names given by hand (0: 'mine')" in caplog.text


def test_large_clusters_are_described_from_an_even_spread_of_their_pictures(cfg, engine, monkeypatch):
    """A million-picture run must not read every thumbnail to name its clusters: at most
    MAX_MEASURED per cluster, spread over its id-sorted members; the sizes still count all."""
    import iss.clustering.names as names_module

    run = make_synthetic_run(cfg, engine, n_pictures=60, n_clusters=3)
    cache = ImageCache(cfg.path("cache"))
    everything = names_module.describe_run(cache, engine, run.run_id)
    read = []
    get_thumbs = ImageCache.get_thumbs
    monkeypatch.setattr(ImageCache, "get_thumbs", lambda self, ids: (read.extend(ids), get_thumbs(self, ids))[1])
    monkeypatch.setattr(names_module, "MAX_MEASURED", 6)
    spread = names_module.describe_run(cache, engine, run.run_id)
    assert len(read) == len(set(read)) == 3 * 6
    sizes = {k: v[1]["n_pictures"] for k, v in everything.items()}
    assert {k: v[1]["n_pictures"] for k, v in spread.items()} == sizes and sum(sizes.values()) == 60
    assert all(v[1]["n_measured"] == 6 for v in spread.values())
    assert {k: v[1]["day_share"] for k, v in spread.items()} == {k: v[1]["day_share"] for k, v in everything.items()}
