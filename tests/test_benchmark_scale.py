"""The scaling benchmark runs end to end on a small collection (the real one is `make bench-scale`):
a real scheduler and worker processes, every picture through ingest, encode and prediction, and
the ingest of full-size frames made from the real ISS frames."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow
pytest.importorskip("distributed", reason="the scaling benchmark needs the dask extra")

from benchmarks import common, folders, scale  # noqa: E402
from iss.config import real_frames_dir  # noqa: E402


def test_variants_of_a_real_frame_decode_to_distinct_pictures():
    """Every file of the scale collection is its own picture, so no duplicate short-cuts the steps."""
    frame = np.asarray(Image.open(sorted(real_frames_dir().glob("*.jpg"))[0]).convert("RGB").resize(scale.FRAME_SIZE))
    decoded = [np.asarray(Image.open(io.BytesIO(scale._variant(frame, i)))) for i in range(200)]
    assert len({d.tobytes() for d in decoded}) == 200
    # ...and each stays close to its base frame (the same kind of picture)
    assert max(np.abs(d.astype(int) - frame).mean() for d in decoded) < 12


def test_scaling_is_the_ratio_of_throughputs():
    by_workers = {1: {"ingest": {"pictures_per_s": 100.0}}, 2: {"ingest": {"pictures_per_s": 180.0}}}
    assert scale.scaling(by_workers) == {"ingest": {"speedup": 1.8, "efficiency": 0.9}}


def test_each_step_keeps_its_fastest_run_and_every_run_s_figure():
    runs = [{"ingest": {"pictures_per_s": 90.0, "seconds": 2.0, "peak_worker_mb": [300.0, 410.0]},
             "encode": {"pictures_per_s": 50.0, "seconds": 4.0, "peak_worker_mb": [500.0, 500.0]}},
            {"ingest": {"pictures_per_s": 100.0, "seconds": 1.8, "peak_worker_mb": [320.0, 400.0]},
             "encode": {"pictures_per_s": 40.0, "seconds": 5.0, "peak_worker_mb": [510.0, 490.0]}}]
    best = scale.fastest(runs)
    assert best["ingest"]["seconds"] == 1.8 and best["ingest"]["runs"] == [90.0, 100.0]
    assert best["encode"]["seconds"] == 4.0 and best["encode"]["runs"] == [50.0, 40.0]
    assert best["ingest"]["peak_worker_mb"] == [320.0, 410.0]  # each worker's peak over every run


def test_report_holds_every_step_for_1_and_2_workers(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "BENCH_DIR", tmp_path / "reports")
    monkeypatch.setattr(folders, "BENCH_DATA", tmp_path / "data")
    monkeypatch.setattr(scale, "BENCH_DATA", tmp_path / "data")
    monkeypatch.setattr(scale, "BASE_FRAMES", 40)
    scale.main(["--sizes", "240", "--full-size", "40", "--repeat", "1"])
    report = json.loads((tmp_path / "reports" / "scale.json").read_text())
    record = report["sizes"]["240"]
    assert record["inprocess_ingest"]["pictures"] == 240
    for workers in ("1", "2"):
        steps = record["workers"][workers]
        assert steps["ingest"]["pictures"] == steps["encode"]["pictures"] == 240  # every picture, once
        assert steps["predict"]["pictures"] == 120  # fitted on half, the rest predicted on the workers
        for figures in steps.values():
            assert figures["pictures_per_s"] > 0 and len(figures["peak_worker_mb"]) == int(workers)
            assert all(mb > 50 for mb in figures["peak_worker_mb"])  # a live Python worker, measured
            assert figures["runs"] == [figures["pictures_per_s"]]
            assert len(figures["cpu_s"]["workers"]) == int(workers) and figures["cpu_s"]["client"] > 0
            assert figures["cpu_s"]["scheduler"] is not None and figures["cpu_s"]["scheduler"] >= 0  # found
        assert sum(steps["ingest"]["cpu_s"]["workers"]) > 0  # the workers decoded the pictures
    assert set(record["scaling"]) == {"ingest", "encode", "predict"}
    assert record["repeat"] == 1 and all(len(v) == 1 for v in record["worker_warmup_s"].values())
    # ingest of full-size frames: variants of the real 1280x720 frames, each decoded once
    full = report["full_size_ingest"]
    assert full["frame_size"] == [1280, 720] and set(full["scaling"]) == {"ingest"}
    assert full["inprocess_ingest"]["pictures"] == 40
    assert all(full["workers"][w]["ingest"]["pictures"] == 40 for w in ("1", "2"))
    frames = sorted((tmp_path / "data" / "scale-real-40-1280x720" / "frames").rglob("*.jpg"))
    assert len(frames) == 40 and Image.open(frames[0]).size == (1280, 720)
    assert not list((tmp_path / "data").glob("iss-scale-*"))  # the projects it made are removed
