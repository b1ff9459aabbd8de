"""``populate_db`` when the database goes away in the middle (issue 15, item 8), on SQLite and MariaDB.

Whatever happens to the database (connection lost mid-transaction, database dropped, file locked
by another program), the step ends with one line naming the database, what happened and what to
do, exit code 1 and no traceback; the batches committed before stay, and a re-run completes.
"""

from __future__ import annotations

import logging
import sqlite3

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

import iss.data.ingest as ingest
from iss.data.cache import ImageCache
from iss.db import schema
from iss.db.engine import get_engine, safe_url
from iss.db.queries import count
from iss.exec.populate_db import app

from ..conftest import MYSQL_SERVER_URL
from ..data.picture_files import write_frames
from ..steps import drop_mysql_database, new_mysql_database, step_env

N = 20  # five batches of 4
REAL_FLUSH = ingest._BatchWriter.flush


def _setup(tmp_path, monkeypatch, url):
    env = step_env(tmp_path / "root", url, ingest={"workers": 1, "batch_size": 4, "chunk_size": 2})
    for name, value in env.environ.items():
        if name.startswith("ISS_"):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("MODE", raising=False)
    ids = write_frames(env.root / "data" / "raw" / "collections", N)
    return env, ids


def _invoke(caplog) -> tuple[int, list[str], object]:
    caplog.clear()
    result = CliRunner().invoke(app, ["--no-progress"])
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    return result.exit_code, errors, result.exception


def _after_batches(monkeypatch, n: int, fault) -> None:
    """Run ``fault()`` once, after the ``n``-th batch was committed."""
    done = {"batches": 0}

    def flush(self):
        REAL_FLUSH(self)
        done["batches"] += 1
        if done["batches"] == n:
            fault()

    monkeypatch.setattr(ingest._BatchWriter, "flush", flush)


def _count_pictures(url: str) -> int:
    engine = get_engine(url)
    with engine.connect() as conn:
        n = count(conn, schema.pictures)
    engine.dispose()
    return n


def _assert_one_clear_line(code, errors, exception, url):
    assert code == 1 and isinstance(exception, SystemExit)  # no traceback reaches the user
    assert len(errors) == 1 and "\n" not in errors[0], errors
    assert errors[0].startswith(f"database {safe_url(url)} failed in the middle of the step (")
    assert errors[0].endswith("then run the step again: it continues where it stopped")


@pytest.fixture
def mysql_url():
    url = new_mysql_database(MYSQL_SERVER_URL)
    yield url
    drop_mysql_database(url)


def test_mariadb_connection_lost_mid_transaction(tmp_path, monkeypatch, caplog, mysql_url):
    env, ids = _setup(tmp_path, monkeypatch, mysql_url)
    real_upsert, calls = ingest.upsert, {"pictures": 0}
    admin = create_engine(MYSQL_SERVER_URL, future=True)

    def upsert_then_lose_the_connection(conn, table, rows, *args, **kwargs):
        written = real_upsert(conn, table, rows, *args, **kwargs)
        if table is schema.pictures:
            calls["pictures"] += 1
            if calls["pictures"] == 3:  # the third batch, inside its transaction: as if the server stopped
                connection_id = conn.execute(text("SELECT CONNECTION_ID()")).scalar_one()
                with admin.connect() as other:
                    other.execute(text(f"KILL CONNECTION {int(connection_id)}"))
        return written

    monkeypatch.setattr(ingest, "upsert", upsert_then_lose_the_connection)
    _assert_one_clear_line(*_invoke(caplog), mysql_url)
    admin.dispose()
    assert _count_pictures(mysql_url) == 8  # the two batches committed before stay

    monkeypatch.setattr(ingest, "upsert", real_upsert)
    code, errors, _ = _invoke(caplog)
    assert (code, errors) == (0, [])
    assert _count_pictures(mysql_url) == N and ImageCache(env.root / "data/processed/cache").ids == ids


def test_mariadb_database_dropped_mid_step(tmp_path, monkeypatch, caplog, mysql_url):
    env, ids = _setup(tmp_path, monkeypatch, mysql_url)
    server, name = mysql_url.rsplit("/", 1)

    def drop():
        admin = create_engine(server, future=True)
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE {name}"))
        admin.dispose()

    _after_batches(monkeypatch, 2, drop)
    _assert_one_clear_line(*_invoke(caplog), mysql_url)
    monkeypatch.setattr(ingest._BatchWriter, "flush", REAL_FLUSH)

    # the database is gone: the next run says so in one line, then runs once it is re-created
    code, errors, _ = _invoke(caplog)
    assert code == 1 and len(errors) == 1 and errors[0].startswith(f"cannot connect to database {safe_url(mysql_url)}")
    admin = create_engine(server, future=True)
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    admin.dispose()
    code, errors, _ = _invoke(caplog)
    assert (code, errors) == (0, [])
    assert _count_pictures(mysql_url) == N
    assert ImageCache(env.root / "data/processed/cache").ids == ids  # pixels cached before were kept, not doubled


def test_sqlite_database_locked_by_another_program_mid_step(tmp_path, monkeypatch, caplog):
    url = f"sqlite:///{tmp_path / 'root' / 'iss.db'}"
    env, ids = _setup(tmp_path, monkeypatch, url)
    holder = {}

    def lock():  # another program takes the database for itself (sqlite3's busy timeout: 5 s)
        holder["conn"] = sqlite3.connect(tmp_path / "root" / "iss.db", isolation_level=None)
        holder["conn"].execute("BEGIN EXCLUSIVE")

    _after_batches(monkeypatch, 2, lock)
    _assert_one_clear_line(*_invoke(caplog), url)
    assert "database is locked" in caplog.text
    holder["conn"].execute("ROLLBACK")
    holder["conn"].close()
    assert _count_pictures(url) == 8

    monkeypatch.setattr(ingest._BatchWriter, "flush", REAL_FLUSH)
    code, errors, _ = _invoke(caplog)
    assert (code, errors) == (0, [])
    assert _count_pictures(url) == N and ImageCache(env.root / "data/processed/cache").ids == ids


def test_an_unreachable_scheduler_ends_the_step_with_one_line_naming_it(tmp_path, monkeypatch, caplog):
    pytest.importorskip("distributed")
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    env, _ = _setup(tmp_path, monkeypatch, f"sqlite:///{tmp_path / 'iss.db'}")
    caplog.clear()
    result = CliRunner().invoke(app, ["--no-progress", "--scheduler", address, "--set", "compute.connect_timeout=1"])
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # typer.Exit, no traceback
    assert len(errors) == 1 and f"no Dask scheduler answers at {address}" in errors[0]
    assert "--scheduler local" in errors[0]
