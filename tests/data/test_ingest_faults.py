"""Ingest on a real Dask cluster (a ``dask scheduler`` and two ``dask worker`` processes started here),
with one worker killed in the middle: the step completes and every picture row is there exactly once.

On SQLite and on MariaDB (the ``db_cfg`` fixture). Each test starts its own cluster on free ports of
127.0.0.1 and ends every process it started (the ``dask_cluster`` fixture of ``tests/conftest.py``).
"""

from __future__ import annotations

import signal

import pytest
from sqlalchemy import func, select

from iss.data.cache import ImageCache
from iss.data.ingest import populate_db
from iss.db import schema
from iss.db.engine import get_engine

from ..conftest import kill_after_chunks
from .picture_files import write_frames

pytest.importorskip("distributed", reason="the Dask tests need the dask extra: pip install 'iss[dask]'")

N_FRAMES = 240
PARTITION = 4  # 60 tasks: the kill lands while most of them are still to run


def test_ingest_completes_exactly_when_a_worker_is_killed_midway(db_cfg, dask_cluster, tmp_path):
    address, workers = dask_cluster
    store = tmp_path / "partitions.zarr"
    cfg = db_cfg.with_overrides({"compute": {"scheduler": address, "partition_size": PARTITION, "store": str(store)},
                                 "ingest": {"batch_size": 32}})
    ids = write_frames(cfg.path("collections"), N_FRAMES, size=(480, 270))
    n_partitions = N_FRAMES // PARTITION
    # thumbs are written after the inputs: a chunk of thumbs is a whole partition
    killer, killed = kill_after_chunks(store / "thumbs", workers[0])
    engine = get_engine(cfg.database_url)
    try:
        summary = populate_db(cfg, engine, progress=False)
        killer.join(timeout=5)
        assert workers[0].wait(timeout=10) == -signal.SIGKILL  # the worker did die...
        assert 2 <= killed["after"] < n_partitions  # ...while most partitions were still to do
        assert summary.scheduler == address and summary.partitions == n_partitions
        assert summary.accepted == N_FRAMES and summary.rejected == {}
        with engine.connect() as conn:
            rows = conn.execute(select(func.count(), func.count(schema.pictures.c.pictures_id.distinct()),
                                       func.count(schema.pictures.c.cache_index.distinct()))).one()
            db_ids = sorted(conn.execute(select(schema.pictures.c.pictures_id)).scalars())
        assert tuple(rows) == (N_FRAMES, N_FRAMES, N_FRAMES)  # no picture lost, none twice, one cache row each
        assert db_ids == sorted(ids)
        cache = ImageCache(cfg.path("cache"))
        assert len(cache) == N_FRAMES and sorted(cache.ids) == sorted(ids)
        assert not store.exists()  # the run's store is removed once its pixels are in the cache

        again = populate_db(cfg, engine, progress=False)  # the surviving worker alone; nothing is new
        assert again.decoded == 0 and again.total_pictures == N_FRAMES
    finally:
        engine.dispose()
