"""Prediction on a real Dask cluster (a ``dask scheduler`` and two ``dask worker`` processes started here),
with one worker killed once some partitions are assigned: the run completes, every picture has one
embedding row, and the labels and coordinates equal the in-process prediction.

On SQLite and on MariaDB (the ``db_cfg`` fixture). The cluster is the ``dask_cluster`` fixture of
``tests/conftest.py``, shared with the ingest and encode fault tests.
"""

from __future__ import annotations

import signal

import numpy as np
import pytest
from sqlalchemy import func, select

from iss.clustering.registry import run_clustering
from iss.db import schema

from ..conftest import kill_when
from .test_registry import embedding_rows, fast_cfg, write_latents

distributed = pytest.importorskip("distributed", reason="the Dask tests need the dask extra: pip install 'iss[dask]'")

N_PICTURES = 2000
FIT_SAMPLE = 200
PARTITION = 25  # 72 tasks: the kill lands while most of them are still to run


def _finished_predictions(dask_scheduler) -> int:
    """Prediction tasks finished so far (run on the scheduler; its per-prefix counts only grow, while
    a finished task is forgotten as soon as the step has its result)."""
    prefix = dask_scheduler.task_prefixes.get("predict")
    return prefix.state_counts["memory"] if prefix is not None else 0


def _stored(engine, run_id):
    rows = embedding_rows(engine, run_id)
    return ([r["pictures_id"] for r in rows], np.array([r["label"] for r in rows]),
            np.array([[r["pictures_x"], r["pictures_y"]] for r in rows]))


def test_prediction_completes_exactly_when_a_worker_is_killed_midway(db_cfg, engine, dask_cluster):
    address, workers = dask_cluster
    cfg = fast_cfg(db_cfg, "n2d", fit_sample=FIT_SAMPLE).with_overrides(
        {"compute": {"partition_size": PARTITION}})
    ids, _ = write_latents(cfg, n=N_PICTURES)
    expected = _stored(engine, run_clustering(cfg, engine, "n2d", "simple_conv", "demo", features="autoencoder"))

    on_dask = cfg.with_overrides({"compute": {"scheduler": address}})
    killer, killed = kill_when(lambda client: client.run_on_scheduler(_finished_predictions), workers[0],
                               timeout_s=120, poll_s=0.01, within=lambda: distributed.Client(address, timeout="30s"))
    run_id = run_clustering(on_dask, engine, "n2d", "simple_conv", "demo", features="autoencoder")
    killer.join(timeout=5)
    assert workers[0].wait(timeout=10) == -signal.SIGKILL  # the worker did die...
    n_tasks = -(-(N_PICTURES - FIT_SAMPLE) // PARTITION)
    assert 2 <= killed["after"] < n_tasks  # ...while most partitions were still to do
    e = schema.pictures_embedding
    with engine.connect() as conn:
        counts = conn.execute(select(func.count(), func.count(e.c.pictures_id.distinct()))
                              .where(e.c.run_id == run_id)).one()
    assert tuple(counts) == (N_PICTURES, N_PICTURES)  # every picture once
    got_ids, labels, xy = _stored(engine, run_id)
    assert got_ids == expected[0] == sorted(ids.tolist())
    np.testing.assert_array_equal(labels, expected[1])  # the retried partitions give the same labels
    np.testing.assert_allclose(xy, expected[2], rtol=1e-5, atol=1e-5)
