"""Loading runs and pictures for the reports, on SQLite and MySQL/MariaDB."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sqlalchemy import select

from iss.db import schema
from iss.visualization.data import (
    ReportError,
    cache_for,
    cluster_summary,
    format_location,
    get_run,
    list_runs,
    load_pictures_frame,
    load_run_frame,
    run_folder_name,
    write_thumbnails,
)
from tests.synthetic import make_synthetic_run

from .conftest import N_CLUSTERS, N_PICTURES


def test_load_run_frame_joins_every_table(small_run):
    frame = load_run_frame(small_run.engine, small_run.run.run_id)
    assert len(frame) == N_PICTURES
    assert frame["pictures_id"].tolist() == sorted(small_run.run.ids)
    by_id = dict(zip(small_run.run.ids, small_run.run.labels))
    assert [by_id[i] for i in frame["pictures_id"]] == frame["label"].tolist()
    assert frame["label"].dtype == np.int64
    assert pd.api.types.is_datetime64_any_dtype(frame["taken_at"])
    assert frame["taken_at"].iloc[0] == pd.Timestamp("2017-11-13 18:13:40")
    assert frame["silhouette"].between(-1, 1).all()
    assert set(frame["split"].dropna()) <= {"train", "test", "valid"}
    # about 70% of the pictures have a location; the others are NA, not dropped
    with small_run.engine.connect() as conn:
        located = {r[0] for r in conn.execute(select(schema.pictures_location.c.pictures_id))}
    has_location = frame["pictures_id"].isin(located)
    assert 0 < has_location.sum() < N_PICTURES
    assert frame.loc[has_location, "latitude"].notna().all()
    assert frame.loc[~has_location, ["latitude", "location"]].isna().all().all()
    assert str(frame["is_day"].dtype) == "boolean"


def test_load_pictures_frame_has_columns_per_run(small_run):
    cfg, engine = small_run.cfg, small_run.engine
    second = make_synthetic_run(cfg, engine, n_pictures=N_PICTURES // 2, n_clusters=3, model_name="other")
    frame = load_pictures_frame(engine)
    first = small_run.run.run_id
    assert len(frame) == N_PICTURES  # every picture once, whatever the runs
    for rid in (first, second.run_id):
        for field in ("label", "silhouette", "x", "y"):
            assert f"{field}_run{rid}" in frame
    # the second run covers only the first half of the pictures: the others are NA
    in_second = frame["pictures_id"].isin(second.ids)
    assert frame.loc[in_second, f"label_run{second.run_id}"].notna().all()
    assert frame.loc[~in_second, f"label_run{second.run_id}"].isna().all()
    assert frame["taken_at"].is_monotonic_increasing
    only_first = load_pictures_frame(engine, [first])
    assert f"label_run{second.run_id}" not in only_first


def test_get_run_latest_and_errors(small_run):
    engine = small_run.engine
    latest = get_run(engine)
    assert latest["run_id"] == small_run.run.run_id
    assert latest["n_clusters"] == N_CLUSTERS
    assert latest["params"]["synthetic"] is True
    with pytest.raises(ReportError, match=r"clustering run 999 not found; existing runs: "):
        get_run(engine, 999)
    assert [r["run_id"] for r in list_runs(engine)] == [latest["run_id"]]


def test_get_run_without_runs(engine):
    with pytest.raises(ReportError, match="no clustering run.*make exec_clustering"):
        get_run(engine)


def test_rerun_replaces_rather_than_duplicates(small_run):
    again = make_synthetic_run(small_run.cfg, small_run.engine, n_pictures=N_PICTURES, n_clusters=N_CLUSTERS)
    assert again.run_id == small_run.run.run_id
    assert len(load_run_frame(small_run.engine, again.run_id)) == N_PICTURES


def test_write_thumbnails_is_idempotent(sqlite_run, tmp_path):
    cache = cache_for(sqlite_run.cfg)
    ids = sqlite_run.run.ids[:10]
    assert write_thumbnails(cache, ids, tmp_path / "thumbs") == 10
    assert write_thumbnails(cache, ids, tmp_path / "thumbs") == 0
    with Image.open(tmp_path / "thumbs" / f"{ids[0]}.jpg") as image:
        assert image.format == "JPEG" and image.size == (96, 54)
        decoded = np.asarray(image.convert("RGB"), dtype=float)
    # JPEG is lossy, but the picture is the cached one
    assert np.abs(decoded - cache.get_thumbs([ids[0]])[0]).mean() < 8


def test_small_helpers():
    assert run_folder_name({"run_id": 3, "clustering_type": "n2d", "model_name": "my model/1",
                            "clustering_version": 2}) == "run-3-n2d-my_model_1-v2"
    assert format_location(12.34, -45.6, "Pacific Ocean") == "Pacific Ocean · 12.3°N 45.6°W"
    assert format_location(float("nan"), float("nan"), None) == "unknown"
    summary = cluster_summary(pd.DataFrame({"label": [0, 0, 1], "silhouette": [0.2, 0.4, np.nan]}))
    assert summary["count"].tolist() == [2, 1]
    assert summary["mean_silhouette"].iloc[0] == pytest.approx(0.3)
