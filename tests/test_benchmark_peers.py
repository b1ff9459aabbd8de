"""bench-peers and bench-e2e: their folders, verdicts, and a whole small run of each through the
real steps (the full-size runs are `make bench-peers` and `make bench-e2e`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from benchmarks import common, e2e, folders, iss_run, peers
from benchmarks.quality import load_dataset
from iss.config import datasets_dir, load_config

needs_mnist = pytest.mark.skipif(not (datasets_dir() / "mnist_10k.npz").is_file(),
                                 reason=f"mnist_10k.npz not in {datasets_dir()} (set ISS_DATASETS)")


@pytest.fixture
def bench_data(tmp_path, monkeypatch):
    """Benchmark folders and reports under tmp_path instead of the project's data/ and reports/."""
    data = tmp_path / "bench"
    for module in (folders, peers, e2e):
        monkeypatch.setattr(module, "BENCH_DATA", data)
    monkeypatch.setattr(common, "BENCH_DIR", tmp_path / "reports")
    return data


def test_stratified_indices_keep_class_shares():
    y = np.repeat(np.arange(4), [400, 300, 200, 100])
    chosen = folders.stratified_indices(y, 100, seed=0)
    assert len(chosen) == len(set(chosen.tolist())) == 100
    assert np.bincount(y[chosen]).tolist() == [40, 30, 20, 10]
    assert np.array_equal(folders.stratified_indices(y, 100, seed=0), chosen)
    with pytest.raises(ValueError, match="between 1 and the 1000"):
        folders.stratified_indices(y, 1001)


@needs_mnist
def test_npz_folder_writes_labelled_pngs_once(bench_data):
    folder = folders.npz_folder("mnist_10k", 50)
    files = folders.picture_files(folder)
    labels = folders.read_labels(folder)
    assert len(files) == len(labels) == 50
    assert sorted(p.stem for p in files) == sorted(labels)
    _, y = load_dataset("mnist_10k")
    expected = 50 * np.bincount(y) / len(y)  # each class in proportion to its share (+- 1 for rounding)
    assert np.abs(np.bincount([int(k) for k in labels.values()], minlength=10) - expected).max() <= 1
    with Image.open(files[0]) as im:
        assert im.size == (28, 28) and im.mode == "L"
    stamp = files[0].stat().st_mtime_ns
    assert folders.npz_folder("mnist_10k", 50) == folder  # cached: nothing rewritten
    assert files[0].stat().st_mtime_ns == stamp


def test_config_for_a_28x28_folder(tmp_path):
    overrides = iss_run.collection_overrides(tmp_path / "set", "npz", 10)
    path = iss_run.write_config(tmp_path / "root", overrides)
    cfg = load_config(path=path, root=tmp_path / "root")
    assert cfg.get("sync.source") == str(tmp_path / "set")
    assert cfg.get("ingest.input_size") == [28, 28] and cfg.get("ingest.filename_pattern") == ""
    assert cfg.get("clustering.n2d.n_clusters") == 10 and cfg.get("training.model_type") == "simple"
    assert cfg.get("training.epochs") == load_config(mode="demo").get("training.epochs")  # the rest as shipped
    assert (iss_run.ROOT / "config" / "posters" / "grid_4x4.yaml").is_file()
    assert cfg.get("posters.templates_dir") == str(iss_run.ROOT / "config" / "posters")


def test_clustimage_settings():
    spec = peers.DATASETS["mnist_10k"]
    assert peers.clustimage_settings("clustimage_defaults", spec) == ({}, {})
    init, fit = peers.clustimage_settings("clustimage_best", spec)
    assert fit["min_clust"] == fit["max_clust"] == 10 and init["dim"] == [28, 28]


def _record(status="ok", wall=100.0, ari=0.5, rss=1000.0):
    return {"status": status, "wall_s": wall, "peak_rss_mb": rss, **({"ari": ari} if status == "ok" else {})}


def test_verdicts_say_why_a_comparison_cannot_be_made():
    results = {
        "a": {"iss": _record(wall=50, ari=0.8), "clustimage_defaults": _record(wall=200, ari=0.7),
              "clustimage_best": _record(ari=0.75)},
        "b": {"iss": _record(wall=300, ari=0.6), "clustimage_defaults": _record(wall=200, ari=0.4),
              "clustimage_best": _record(ari=0.7)},
        "c": {"iss": _record(wall=50, ari=0.8), "clustimage_defaults": _record("memory_limit", wall=90, rss=8200),
              "clustimage_best": _record("time_limit", wall=1800)},
        "d": {"iss": _record(wall=50, ari=0.8), "clustimage_defaults": _record("time_limit", wall=1800)},
    }
    v = peers.verdicts(results)
    assert v["a"] == {"faster_than_clustimage_defaults": True, "speed_ratio": 4.0,
                      "ari_above_clustimage_best": True, "ari_margin": 0.05}
    assert v["b"]["faster_than_clustimage_defaults"] is False and v["b"]["ari_above_clustimage_best"] is False
    assert v["c"]["faster_than_clustimage_defaults"] is None and "memory_limit" in v["c"]["faster_note"]
    assert v["c"]["ari_above_clustimage_best"] is None and "clustimage_best" in v["c"]["ari_note"]
    assert v["d"]["faster_than_clustimage_defaults"] is True and "time limit" in v["d"]["faster_note"]
    table = peers.table(results)
    assert "| c | clustimage_defaults | memory_limit | 90 | 8200 | — | — | — | — |" in table


@pytest.mark.slow
@needs_mnist
def test_peers_run_on_a_small_folder(bench_data, tmp_path, monkeypatch):
    """iss through its real steps and UMAP + k-means (clustimage and fastdup too when their
    environments exist) on 60 MNIST digits, scored, with verdicts and the JSON written."""
    monkeypatch.setitem(peers.DATASETS, "tiny", {"kind": "npz", "set": "mnist_10k", "n": 60, "small": 60, "k": 10})
    tools = ["iss", "umap_kmeans"] + (["clustimage_best"] if peers.PEERS_PYTHON.exists() else []) \
        + (["fastdup_kmeans"] if peers.FASTDUP_PYTHON.exists() else [])
    out = tmp_path / "peers.json"
    report = peers.main(["--datasets", "tiny", "--tools", ",".join(tools), "--time-limit", "900", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert report["datasets"]["tiny"]["n"] == 60 and report["numba_warm_up"]["status"] == "ok"
    for tool in tools:
        record = report["results"]["tiny"][tool]
        assert record["status"] == "ok", record.get("log_tail")
        assert record["n_scored"] == 60 and record["k"] >= 2
        assert 0.0 <= record["acc"] <= 1.0 and -1.0 <= record["ari"] <= 1.0
        assert record["wall_s"] > 0 and record["peak_rss_mb"] > 20
    iss = report["results"]["tiny"]["iss"]
    assert list(iss["steps"]) == iss_run.PEER_STEPS
    assert iss["wall_s"] == pytest.approx(sum(s["wall_s"] for s in iss["steps"].values()), abs=0.5)
    assert not (bench_data / "runs" / "peers" / "tiny" / "iss" / "root").exists()  # the project root is removed
    assert (bench_data / "runs" / "peers" / "tiny" / "iss" / "logs" / "training.log").is_file()


@pytest.mark.slow
def test_e2e_runs_every_step_and_profiles_the_slowest(bench_data):
    result = e2e.main(["--n", "60", "--time-limit", "1200"])
    assert result["complete"], result.get("log_tail")
    assert list(result["steps"]) == iss_run.E2E_STEPS
    assert all(s["status"] == "ok" and s["peak_rss_mb"] > 20 for s in result["steps"].values())
    slowest = result["slowest"]
    assert slowest["wall_s"] == max(s["wall_s"] for s in result["steps"].values())
    assert slowest["profile"]["samples"] > 10 and slowest["profile"]["by_library"]
    assert set(result["clustering_metrics"]) >= {"ari", "nmi", "acc"}
    assert (common.BENCH_DIR / "e2e-60.json").is_file()
