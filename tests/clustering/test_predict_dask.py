"""Prediction of the collection after a fit on a sample: in partitions, here or as Dask tasks, with the
same labels and coordinates wherever the partitions run."""

from __future__ import annotations

import numpy as np
import pytest

from iss.clustering import make_clustering
from iss.clustering.predict import assign_collection
from iss.clustering.registry import run_clustering

from .test_registry import FAST, embedding_rows, fast_cfg, run_row, write_latents

pytest.importorskip("distributed", reason="the Dask tests need the dask extra: pip install 'iss[dask]'")
pytest.importorskip("zarr", reason="the Dask tests need the dask extra: pip install 'iss[dask]'")

PARTITION = 64  # 300 pictures, 100 fitted: 200 to predict in 4 partitions, the last one short


def _run(cfg, engine, scheduler: str):
    """The stored (ids, labels, x, y) of an n2d run fitted on 100 of 300 pictures, predicted on ``scheduler``."""
    cfg = cfg.with_overrides({"compute": {"scheduler": scheduler, "partition_size": PARTITION, "n_workers": 2}})
    run_id = run_clustering(cfg, engine, "n2d", "simple_conv", "demo", features="autoencoder")
    assert run_row(engine, run_id)["params"]["n_fitted"] == 100
    rows = embedding_rows(engine, run_id)
    return ([r["pictures_id"] for r in rows], np.array([r["label"] for r in rows]),
            np.array([[r["pictures_x"], r["pictures_y"]] for r in rows]))


@pytest.mark.parametrize("scheduler", ["synchronous", "local"])
def test_predicting_on_dask_gives_the_in_process_labels_and_coordinates(db_cfg, engine, scheduler):
    cfg = fast_cfg(db_cfg, "n2d", fit_sample=100)
    write_latents(cfg)
    ids, labels, xy = _run(cfg, engine, "auto")
    dask_ids, dask_labels, dask_xy = _run(cfg, engine, scheduler)
    assert dask_ids == ids
    np.testing.assert_array_equal(dask_labels, labels)
    np.testing.assert_allclose(dask_xy, xy, rtol=1e-5, atol=1e-5)
    assert not (cfg.path("interim") / "predict_partitions.zarr").exists()  # the run's store is removed


def test_copies_in_different_partitions_share_a_cluster(cfg):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 8)).astype(np.float32)
    X[150] = X[3]  # two copies of an unfitted row, three partitions apart
    X[190] = X[3]
    estimator = make_clustering("classical", **FAST["classical"]).fit(X[100:])
    on = cfg.with_overrides({"compute": {"partition_size": 16}})
    assigned = assign_collection(on, estimator, X[:100].copy())
    whole = estimator.assign(X[:100])  # PCA + k-means is row by row: partitions change nothing
    np.testing.assert_array_equal(assigned.labels, whole.labels)
    np.testing.assert_allclose(assigned.reduced, whole.reduced, rtol=1e-6)
    together = assign_collection(on, estimator, X[:200])
    assert together.labels[150] == together.labels[190] == together.labels[3]
    np.testing.assert_array_equal(together.coords[150], together.coords[3])


def test_exec_clustering_takes_the_scheduler(tmp_path, monkeypatch, caplog):
    from typer.testing import CliRunner

    from iss.config import load_config
    from iss.exec import exec_clustering as command

    monkeypatch.setenv("ISS_ROOT", str(tmp_path))
    monkeypatch.setenv("MODE", "demo")
    write_latents(load_config(mode="demo", root=tmp_path))
    fast = [f"clustering.n2d.{key}={value}" for key, value in
            (("n_clusters", 3), ("umap.n_neighbors", 10), ("n_epochs", 100), ("n_init", 3))]
    args = ["--clustering-type", "n2d", "--features", "autoencoder", "--model-type", "simple_conv", "--model-name",
            "demo", "--fit-sample", "100", "--no-reports", *[item for key in fast for item in ("--set", key)]]
    caplog.set_level("INFO", logger="iss.clustering.predict")
    result = CliRunner().invoke(command.app, [*args, "--scheduler", "synchronous", "--set", "compute.partition_size=64"])
    assert result.exit_code == 0, result.output
    assert "in 4 partitions of up to 64" in caplog.text and "(Dask synchronous)" in caplog.text
    result = CliRunner().invoke(command.app, [*args, "--scheduler", "tcp://127.0.0.1:9",
                                              "--set", "compute.connect_timeout=1"])
    assert result.exit_code == 1 and "no Dask scheduler answers at tcp://127.0.0.1:9" in caplog.text
