"""Ingest on a real Dask cluster (a ``dask scheduler`` and two ``dask worker`` processes started here),
with one worker killed in the middle: the step completes and every picture row is there exactly once.

On SQLite and on MariaDB (the ``db_cfg`` fixture). Each test starts its own cluster on free ports of
127.0.0.1 and ends every process it started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from iss.data.cache import ImageCache
from iss.data.ingest import populate_db
from iss.db import schema
from iss.db.engine import get_engine

from .picture_files import write_frames

distributed = pytest.importorskip("distributed", reason="the Dask tests need the dask extra: pip install 'iss[dask]'")

PROJ_ROOT = Path(__file__).resolve().parents[2]
N_FRAMES = 240
PARTITION = 4  # 60 tasks: the kill lands while most of them are still to run


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJ_ROOT), os.environ.get("PYTHONPATH", "")])}
    with log.open("wb") as out:  # a file, not a pipe: a chatty process never blocks on a full pipe
        return subprocess.Popen([sys.executable, "-m", *args], stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=PROJ_ROOT, start_new_session=True)


@pytest.fixture
def dask_cluster(tmp_path):
    """``(address, [worker processes])``: a scheduler and two single-threaded workers without nannies
    (so a killed worker stays dead, as a lost machine does)."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    processes = [_start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
                         "--no-dashboard"], tmp_path / "scheduler.log")]
    try:
        workers = [_start(["distributed.cli.dask_worker", address, "--nthreads", "1", "--no-nanny",
                           "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{i}"], tmp_path / f"worker{i}.log")
                   for i in range(2)]
        processes += workers
        with distributed.Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _chunks_written(store: Path) -> int:
    folder = store / "thumbs" / "c"  # thumbs are written after the inputs: a chunk here is a whole partition
    return sum(len(files) for _, _, files in os.walk(folder)) if folder.exists() else 0


def test_ingest_completes_exactly_when_a_worker_is_killed_midway(db_cfg, dask_cluster, tmp_path):
    address, workers = dask_cluster
    store = tmp_path / "partitions.zarr"
    cfg = db_cfg.with_overrides({"compute": {"scheduler": address, "partition_size": PARTITION, "store": str(store)},
                                 "ingest": {"batch_size": 32}})
    ids = write_frames(cfg.path("collections"), N_FRAMES, size=(480, 270))
    n_partitions = N_FRAMES // PARTITION
    killed = {}

    def kill_after_first_partitions() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            written = _chunks_written(store)
            if written >= 2:
                os.kill(workers[0].pid, signal.SIGKILL)
                killed["after"] = written
                return
            time.sleep(0.002)

    killer = threading.Thread(target=kill_after_first_partitions, daemon=True)
    killer.start()
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
