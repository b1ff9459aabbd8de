"""Ingest as Dask tasks gives the same database rows and cache as the single-machine path.

From an fsspec URL (``memory://``: listed, stat'ed and read through fsspec, pixels through a
``memory://`` Zarr store) on the synchronous scheduler, and from a local folder on a LocalCluster
of two worker processes (pixels through a Zarr folder).
"""

from __future__ import annotations

import math
import uuid

import numpy as np
import pytest
from sqlalchemy import select

from iss.compute import PARTITION_BYTES
from iss.data.cache import ImageCache
from iss.data.ingest import IngestError, partition_size_for, populate_db
from iss.db import schema
from iss.db.engine import get_engine

from .picture_files import SKIPPED_KINDS, make_messy_folder, write_frames

pytest.importorskip("distributed", reason="the Dask tests need the dask extra: pip install 'iss[dask]'")
fsspec = pytest.importorskip("fsspec")


def _ingest(cfg, **overrides):
    cfg = cfg.with_overrides(overrides) if overrides else cfg
    engine = get_engine(cfg.database_url)
    try:
        summary = populate_db(cfg, engine, progress=False)
        with engine.connect() as conn:
            pictures = {r.pictures_id: r._asdict() for r in conn.execute(select(schema.pictures))}
            rejected = {r.filename: r.reason for r in conn.execute(select(schema.pictures_rejected))}
    finally:
        engine.dispose()
    return summary, pictures, rejected


def _cache_by_id(cfg) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    cache = ImageCache(cfg.path("cache"))
    return {pid: (cache.inputs[i], cache.thumbs[i]) for i, pid in enumerate(cache.ids)}


def _same_rows(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for pid in a:
        ignore = {"ingested_at", "file_mtime"}  # the copy in memory:// has its own times...
        if a[pid]["taken_at_source"] == "mtime":
            ignore.add("taken_at")  # ...and so do pictures dated by them
        assert {k: v for k, v in a[pid].items() if k not in ignore} == \
               {k: v for k, v in b[pid].items() if k not in ignore}, pid


@pytest.fixture
def second_url(db_cfg, tmp_path):
    """A second empty database on the backend of ``db_cfg`` (dropped at the end)."""
    url = db_cfg.database_url
    if url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'second.db'}"
        return
    from ..steps import drop_mysql_database, new_mysql_database

    url = new_mysql_database(url.rsplit("/", 1)[0])
    yield url
    drop_mysql_database(url)


@pytest.fixture
def memory_url():
    url = f"memory://iss-test-{uuid.uuid4().hex[:8]}"
    yield url
    fs, root = fsspec.core.url_to_fs(url)
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_a_memory_url_ingested_as_tasks_gives_the_rows_and_pixels_of_the_local_ingest(db_cfg, second_url, tmp_path,
                                                                                      memory_url):
    folder = tmp_path / "pictures"
    good, bad = make_messy_folder(folder)
    write_frames(folder / "2020", 10)
    fs, root = fsspec.core.url_to_fs(memory_url)
    for path in folder.rglob("*"):
        target = f"{root}/pictures/{path.relative_to(folder).as_posix()}"
        fs.mkdir(target) if path.is_dir() else fs.pipe(target, path.read_bytes())

    local_cfg = db_cfg.with_overrides({"paths": {"collections": str(folder)}, "ingest": {"workers": 1}})
    local, local_rows, local_rejected = _ingest(local_cfg)
    remote_cfg = db_cfg.with_overrides({"paths": {"collections": f"{memory_url}/pictures", "cache": str(tmp_path / "c2")},
                                        "database": {"url": second_url},
                                        "compute": {"scheduler": "synchronous", "partition_size": 5,
                                                    "store": f"{memory_url}/store.zarr"}})
    remote, remote_rows, remote_rejected = _ingest(remote_cfg)

    assert local.scheduler == "inprocess" and remote.scheduler == "synchronous"
    assert remote.partitions == -(-remote.decoded // 5)
    assert remote.accepted == local.accepted == len(good) + 10
    assert remote_rejected == local_rejected == {**bad, **SKIPPED_KINDS}
    _same_rows(local_rows, remote_rows)
    a, b = _cache_by_id(local_cfg), _cache_by_id(remote_cfg)
    assert sorted(a) == sorted(b)
    for pid in a:
        assert np.array_equal(a[pid][0], b[pid][0]) and np.array_equal(a[pid][1], b[pid][1]), pid
    assert not fs.exists(f"{root}/store.zarr")  # removed once its pixels are in the cache

    again, rows, _ = _ingest(remote_cfg)  # a re-run decodes nothing and adds no row
    assert again.decoded == 0 and len(rows) == len(remote_rows)


def test_a_local_cluster_writes_the_cache_in_the_same_order_as_the_fork_pool(cfg, tmp_path):
    write_frames(cfg.path("collections"), 48)
    pool_cfg = cfg.with_overrides({"ingest": {"workers": 2}})
    _, pool_rows, _ = _ingest(pool_cfg)
    dask_cfg = cfg.with_overrides({"paths": {"cache": str(tmp_path / "dask_cache")},
                                   "database": {"url": f"sqlite:///{tmp_path / 'dask.db'}"},
                                   "compute": {"scheduler": "local", "n_workers": 2, "partition_size": 8}})
    summary, dask_rows, _ = _ingest(dask_cfg)
    assert summary.scheduler == "local" and summary.workers == 2 and summary.partitions == 6
    _same_rows(pool_rows, dask_rows)  # cache_index included: the same row for each picture
    pool_cache, dask_cache = ImageCache(pool_cfg.path("cache")), ImageCache(dask_cfg.path("cache"))
    assert pool_cache.ids == dask_cache.ids
    assert np.array_equal(pool_cache.inputs, dask_cache.inputs) and np.array_equal(pool_cache.thumbs, dask_cache.thumbs)
    assert not (cfg.path("interim") / "ingest_partitions.zarr").exists()


def test_a_url_with_nothing_under_it_is_one_clear_error(cfg, memory_url):
    with pytest.raises(IngestError, match=rf"no folder at {memory_url}/nothing \(paths\.collections\)"):
        _ingest(cfg, paths={"collections": f"{memory_url}/nothing"})


def test_partitions_give_each_worker_several_tasks_of_16_pictures_to_10_mb():
    assert partition_size_for(100, 2) == 16
    assert partition_size_for(20_000, 2, row_bytes=20_480) == 500 and partition_size_for(20_000, 16) == 157
    assert partition_size_for(100_000, 2, row_bytes=5_120) == 2000  # cheap rows: bigger tasks, same bytes
    assert partition_size_for(10**6, 64, setting=100) == 100


@pytest.mark.parametrize("n, workers, row_bytes", [(100_000, 2, 5_120), (10**6, 2, 5_120), (100_000, 3, 19_440),
                                                   (12_345, 4, 19_440), (10**6, 16, 1_000)])
def test_partitions_come_in_a_multiple_of_the_workers_so_none_idles_through_the_last_round(n, workers, row_bytes):
    size = partition_size_for(n, workers, row_bytes=row_bytes)
    partitions = math.ceil(n / size)
    assert partitions % workers == 0, (size, partitions)
    assert size * row_bytes <= PARTITION_BYTES  # still within the bytes a task may move
    assert n - (partitions - 1) * size > size // 2  # the last partition is not a stub either
