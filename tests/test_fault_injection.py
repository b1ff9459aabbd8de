"""Fault injection: ``kill -9`` of a step in the middle of its work, then a re-run, on SQLite and MariaDB.

Issue 15, item 10 and the fault-injection deliverable: the killed step leaves no worker process
behind, and running it again completes with exact row counts (nothing lost, nothing twice).
"""

from __future__ import annotations

import shutil
import signal
import time

import numpy as np
import psutil
import pytest
from PIL import Image
from sqlalchemy import select

from iss.data.cache import ImageCache
from iss.db import schema
from iss.db.engine import get_engine
from iss.db.queries import count

from .conftest import MYSQL_SERVER_URL
from .steps import drop_mysql_database, new_mysql_database, step_env

pytestmark = pytest.mark.slow

N_PICTURES = 160


@pytest.fixture(params=["sqlite", "mysql"])
def env(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'root' / 'iss.db'}"
    else:
        url = new_mysql_database(MYSQL_SERVER_URL)
        request.addfinalizer(lambda: drop_mysql_database(url))
    return step_env(tmp_path / "root", url, ingest={"workers": 2, "batch_size": 8, "chunk_size": 2})


def _wait_for(condition, timeout: float, every: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {condition}")


def _kill_and_check_nothing_is_left(process: psutil.Popen | object, children: list[psutil.Process]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    _, alive = psutil.wait_procs(children, timeout=15)
    leftover = [(p.pid, p.name()) for p in alive]
    for p in alive:  # do not leave them to the next test
        p.kill()
    assert leftover == [], "worker processes outlived their killed parent"


def _pictures(url: str) -> tuple[int, int]:
    engine = get_engine(url)
    with engine.connect() as conn:
        result = count(conn, schema.pictures), count(conn, schema.pictures_rejected)
    engine.dispose()
    return result


def test_kill_9_during_ingest_leaves_no_worker_and_a_rerun_completes(env):
    folder = env.root / "data" / "raw" / "collections"
    folder.mkdir(parents=True)
    # A 1280x720 PNG (no reduced-scale decoding: ~30 ms each), copied under frame names: seconds of work.
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)).save(folder / "20200101-000000.png")
    for i in range(1, N_PICTURES):
        shutil.copyfile(folder / "20200101-000000.png", folder / f"20200101-{i:04d}00.png")
    (folder / "notes.txt").write_text("not a picture")

    process = env.start("populate_db", "--no-progress")
    parent = psutil.Process(process.pid)
    workers = _wait_for(lambda: len(parent.children()) >= 2 and parent.children(), timeout=120)
    _wait_for(lambda: _pictures(env.database_url)[0] >= 8, timeout=120)  # at least one batch committed
    _kill_and_check_nothing_is_left(process, workers)
    written, _ = _pictures(env.database_url)
    assert 8 <= written < N_PICTURES  # killed in the middle

    code, output = env.run("populate_db", "--no-progress")
    assert code == 0, output[-3000:]
    assert _pictures(env.database_url) == (N_PICTURES, 1)  # every picture once, notes.txt named
    cache = ImageCache(env.root / "data" / "processed" / "cache")
    assert len(cache) == N_PICTURES and len(set(cache.ids)) == N_PICTURES
    engine = get_engine(env.database_url)
    with engine.connect() as conn:
        rows = conn.execute(select(schema.pictures.c.pictures_id, schema.pictures.c.cache_index)).all()
    engine.dispose()
    assert sorted(index for _, index in rows) == list(range(N_PICTURES))
    assert all(cache.index_of([pid])[0] == index for pid, index in rows)


def test_kill_9_during_encode_then_a_rerun_writes_every_latent_once(env):
    from tests.models.conftest import fill_cache, write_splits

    from iss.config import load_config
    from iss.models.training import train_model

    cfg = load_config(path=env.config, root=env.root)
    cache = fill_cache(cfg, 3000)
    engine = get_engine(env.database_url)
    write_splits(engine, cache.ids[:200], 160)
    train_model(cfg, engine, "simple_conv", "demo", epochs=1, verbose=0)
    engine.dispose()
    latents = env.root / "data" / "processed" / "latents" / "simple_conv" / "demo" / "latents.npz"

    log = env.root / "encode-killed.log"
    process = env.start("encode", "--batch-size", "4", log=log)
    _wait_for(lambda: "encoding 3000 of 3000 pictures" in log.read_text(), timeout=300, every=0.02)
    children = psutil.Process(process.pid).children(recursive=True)
    _kill_and_check_nothing_is_left(process, children)
    assert not latents.exists()  # killed before the (atomic) write

    code, output = env.run("encode")
    assert code == 0, output[-3000:]
    with np.load(latents) as data:
        ids, values = data["ids"].astype(str), data["latents"]
    assert ids.tolist() == cache.ids and values.shape[0] == 3000 and np.isfinite(values).all()
    assert [p.name for p in latents.parent.iterdir()] == ["latents.npz"]  # no temporary file left
    engine = get_engine(env.database_url)
    with engine.connect() as conn:
        metrics = conn.execute(select(schema.models.c.metrics)).scalar_one()
    engine.dispose()
    assert metrics["n_latents"] == 3000
