"""Shared fixtures: a fixed seed, a config rooted in a temporary folder, and a database engine
on SQLite and on the local MySQL/MariaDB server (``ISS_TEST_MYSQL_URL``, default root@127.0.0.1)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from typing import ContextManager
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from iss.config import PROJ_ROOT, load_config
from iss.db.engine import get_engine

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def real_frame_paths() -> list[Path]:
    """The real ISS frames (``$ISS_REAL_FRAMES``, else ``shared/real/iss_frames`` beside the repository or
    beside one of its parent folders), sorted; empty when they are not on this machine."""
    candidates = [Path(os.environ["ISS_REAL_FRAMES"])] if os.environ.get("ISS_REAL_FRAMES") else []
    candidates += [parent / "shared" / "real" / "iss_frames" for parent in PROJ_ROOT.parents]
    for folder in candidates:
        if folder.is_dir():
            return sorted(folder.glob("*.jpg"))
    return []

SEED = 1234
MYSQL_SERVER_URL = os.environ.get("ISS_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")


@pytest.fixture(autouse=True)
def fixed_seed():
    random.seed(SEED)
    np.random.seed(SEED)
    yield


@pytest.fixture
def cfg(tmp_path):
    """The demo config with every path under ``tmp_path`` and a SQLite file there."""
    return load_config(mode="demo", root=tmp_path, overrides={"database": {"url": "sqlite:///iss_test.db"}})


@pytest.fixture(scope="session")
def mysql_server():
    """A fresh database on the MySQL/MariaDB server for this test session, dropped at the end."""
    name = f"iss_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(MYSQL_SERVER_URL, future=True)
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    except Exception as exc:  # noqa: BLE001 - any failure here means the server is not usable
        pytest.fail(f"MySQL/MariaDB tests need a server at {MYSQL_SERVER_URL} ({exc}); start it with "
                    f"`start-stop-daemon --start --oknodo --background --exec $(command -v mariadbd)` "
                    f"or set ISS_TEST_MYSQL_URL", pytrace=False)
    yield f"{MYSQL_SERVER_URL}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    admin.dispose()


def _drop_all(engine):
    import gc

    from iss.db.schema import metadata
    # A connection a test left unclosed keeps its transaction, and MariaDB's DROP TABLE then waits for
    # its metadata lock forever; collecting it (SQLAlchemy connections sit in reference cycles) ends it.
    gc.collect()
    metadata.drop_all(engine)


@pytest.fixture(params=["sqlite", "mysql"])
def db_url(request, tmp_path):
    """A database URL with an empty schema, once on SQLite and once on MySQL/MariaDB."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'iss_test.db'}"
        return
    url = request.getfixturevalue("mysql_server")
    engine = get_engine(url)
    _drop_all(engine)
    engine.dispose()
    yield url


@pytest.fixture
def engine(db_url):
    """An engine with the schema created, on each backend."""
    eng = get_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def db_cfg(cfg, db_url):
    """The ``cfg`` fixture pointed at each backend."""
    return cfg.with_overrides({"database": {"url": db_url}})


# --- a real Dask cluster: a scheduler and two worker processes on free ports of 127.0.0.1 -------

@pytest.fixture
def dask_cluster(tmp_path):
    """``(address, [worker processes])``: a scheduler and two single-threaded workers without nannies
    (so a killed worker stays dead, as a lost machine does). They import ``iss`` from this checkout."""
    pytest.importorskip("distributed", reason="the Dask tests need the dask extra: pip install 'iss[dask]'")
    from benchmarks.cluster import process_cluster

    with process_cluster(2, tmp_path / "dask") as (address, workers, _):
        yield address, workers


def chunks_written(array: Path, files: str = "c") -> int:
    """Chunks of a Zarr array (the folder ``<store>/<name>``) written so far (files under ``array/files``)."""
    folder = array / files
    return sum(len(names) for _, _, names in os.walk(folder)) if folder.exists() else 0


def kill_when(count: Callable[..., int], worker: subprocess.Popen, after: int = 2, timeout_s: float = 60,
              poll_s: float = 0.002, within: Callable[[], ContextManager] | None = None,
              ) -> tuple[threading.Thread, dict]:
    """SIGKILL ``worker`` as soon as ``count()`` reaches ``after`` (within ``timeout_s``): a started
    thread, and a dict whose ``"after"`` says what ``count()`` was at the kill.

    ``within``, when given, makes a context entered in the watching thread (a Dask ``Client``: one
    belongs to the thread that made it); ``count`` then takes its value.
    """
    killed: dict = {}

    def watch() -> None:
        with (within or nullcontext)() as context:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                done = count(context) if within else count()
                if done >= after:
                    os.kill(worker.pid, signal.SIGKILL)
                    killed["after"] = done
                    return
                time.sleep(poll_s)

    killer = threading.Thread(target=watch, daemon=True)
    killer.start()
    return killer, killed


def kill_after_chunks(array: Path, worker: subprocess.Popen, after: int = 2, files: str = "c",
                      ) -> tuple[threading.Thread, dict]:
    """SIGKILL ``worker`` as soon as ``after`` chunks of ``array`` are written (:func:`kill_when`);
    ``files``: the sub-folder counted (``shards`` for the search index's serialized shards)."""
    return kill_when(lambda: chunks_written(array, files), worker, after)
