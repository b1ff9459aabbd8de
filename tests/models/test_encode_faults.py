"""Encode on a real Dask cluster (a ``dask scheduler`` and two ``dask worker`` processes started here),
with one worker killed once some latents are written: the step completes, and every picture has
its latents exactly once, equal to the in-process encode.

On SQLite and on MariaDB (the ``db_cfg`` fixture: the model's row records the latents' count). The
cluster is the ``dask_cluster`` fixture of ``tests/conftest.py`` (the same as the ingest fault test).
"""

from __future__ import annotations

import signal

import numpy as np
import pytest
from sqlalchemy import select

from iss.db import schema
from iss.db.engine import get_engine
from iss.models.encode import encode_collection, load_latents
from iss.models.training import train_model

from ..conftest import kill_after_chunks
from .conftest import fill_cache, write_splits

pytest.importorskip("distributed", reason="the Dask tests need the dask extra: pip install 'iss[dask]'")

N_PICTURES = 1600
PARTITION = 8  # 200 tasks of a few ms: the kill lands while most of them are still to run


def test_encode_completes_exactly_when_a_worker_is_killed_midway(db_cfg, dask_cluster, tmp_path):
    address, workers = dask_cluster
    store = tmp_path / "partitions.zarr"  # ingest's; encode's is beside it
    cfg = db_cfg.with_overrides({"compute": {"scheduler": address, "partition_size": PARTITION, "store": str(store)},
                                 "training": {"epochs": 1, "batch_size": 64, "checkpoint_every": 1, "image_every": 0}})
    cache = fill_cache(cfg, N_PICTURES)
    engine = get_engine(cfg.database_url)
    try:
        write_splits(engine, cache.ids[:200], 160)
        train_model(cfg, engine, "simple_conv", "enc", epochs=1, verbose=0)
        in_process = encode_collection(cfg.with_overrides({"compute": {"scheduler": "auto"}}), engine,
                                       "simple_conv", "enc")
        expected_ids, expected = load_latents(cfg, "simple_conv", "enc")
        in_process.unlink()

        encode_store = tmp_path / "encode_partitions.zarr"
        killer, killed = kill_after_chunks(encode_store / "latents", workers[0])
        path = encode_collection(cfg, engine, "simple_conv", "enc")
        killer.join(timeout=5)
        assert workers[0].wait(timeout=10) == -signal.SIGKILL  # the worker did die...
        assert 2 <= killed["after"] < N_PICTURES // PARTITION  # ...while most partitions were still to do
        ids, latents = load_latents(cfg, "simple_conv", "enc")  # checks: no id twice, every value finite
        assert list(ids) == cache.ids and len(ids) == N_PICTURES  # none lost, none twice, in cache order
        np.testing.assert_array_equal(ids, expected_ids)
        np.testing.assert_allclose(latents, expected, rtol=1e-5, atol=1e-6)
        with engine.connect() as conn:
            metrics = conn.execute(select(schema.models.c.metrics)).scalar_one()
        assert metrics["n_latents"] == N_PICTURES and metrics["latents_path"] == str(path)
        assert not encode_store.exists()  # the run's store is removed once its latents are in the file

        # again, on the surviving worker alone: nothing new to encode, then everything re-encoded the same
        encode_collection(cfg, engine, "simple_conv", "enc")
        np.testing.assert_array_equal(load_latents(cfg, "simple_conv", "enc")[1], latents)
        encode_collection(cfg, engine, "simple_conv", "enc", only_new=False)
        again_ids, again = load_latents(cfg, "simple_conv", "enc")
        np.testing.assert_array_equal(again_ids, ids)
        np.testing.assert_allclose(again, latents, rtol=1e-5, atol=1e-6)
        with engine.connect() as conn:
            assert conn.execute(select(schema.models.c.metrics)).scalar_one()["n_latents"] == N_PICTURES
    finally:
        engine.dispose()
