"""The approximate-search benchmark runs end to end on a small set (the real one is `make bench` / `make bench-ann`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("faiss")

from benchmarks import ann, common  # noqa: E402


def test_latents_like_data_is_clustered_not_noise():
    data = ann.latents_like(2000, seed=1)
    assert data.shape == (2000, ann.D) and data.dtype == np.float32
    # low intrinsic dimension: 32 directions hold nearly all the variance, as in encoder latents
    spectrum = np.linalg.svd(data - data.mean(axis=0), compute_uv=False) ** 2
    assert spectrum[:ann.SUBSPACE].sum() / spectrum.sum() > 0.95


def test_report_holds_every_figure_and_the_search_index_keeps_recall(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "BENCH_DIR", tmp_path)
    ann.main(["--n", "4000", "--libs", "faiss_hnsw,faiss_ivf", "--out", "ann_test"])
    report = json.loads((tmp_path / "ann_test.json").read_text())
    assert report["n"] == 4000 and report["exact"]["query_p50_ms"] > 0
    for lib in ("faiss_hnsw", "faiss_ivf"):
        figures = report["libraries"][lib]
        assert figures["build_s"] > 0 and figures["index_mb"] > 0 and len(figures["runs"]) == 3
        assert all(0 <= run["recall_at_10"] <= 1 and run["query_p50_ms"] > 0 for run in figures["runs"])
    assert report["libraries"]["faiss_hnsw"]["runs"][1]["recall_at_10"] >= 0.95
    iss = report["iss"]
    assert iss["library"] == "faiss-hnsw" and iss["recall_at_10"] >= 0.95
    assert iss["loo_nearest_distance_exact_share"] >= 0.95 and iss["threshold_relative_error"] < 0.01
    with pytest.raises(SystemExit):
        ann.main(["--libs", "annoy"])


def test_sharded_report_holds_the_build_on_1_and_2_workers(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "BENCH_DIR", tmp_path)
    ann.main(["--n", "3000", "--libs", "", "--no-iss", "--sharded", "--shard-size", "1000", "--out", "ann_sharded"])
    sharded = json.loads((tmp_path / "ann_sharded.json").read_text())["sharded"]
    assert sharded["shards"] == 3 and sharded["build_s_1_worker"] > 0 and sharded["build_s_2_workers"] > 0
    assert 0 < sharded["cpu_share_2_workers"] and sharded["single_graph_recall_at_10"] >= 0.95
    index = sharded["index"]
    assert index["library"] == "faiss-hnsw-sharded" and index["recall_at_10"] >= 0.95
    assert index["loo_nearest_distance_exact_share"] >= 0.95 and index["threshold_relative_error"] < 0.01
