"""Connecting and creating the schema, on SQLite and MariaDB; errors that name the URL, password hidden."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from iss.db import schema
from iss.db.engine import DatabaseError, get_engine, safe_url, table_names

TABLES = ["cluster_names", "clustering_runs", "models", "pictures", "pictures_embedding", "pictures_location", "pictures_rejected",
          "posters", "posters_slots", "schema_version", "splits"]


def test_schema_is_created_once_with_its_version(db_url):
    engine = get_engine(db_url)
    assert table_names(engine) == TABLES
    engine.dispose()
    engine = get_engine(db_url)  # idempotent
    with engine.connect() as conn:
        versions = conn.execute(select(schema.schema_version.c.version)).scalars().all()
    assert versions == [schema.SCHEMA_VERSION]
    engine.dispose()


def test_a_newer_schema_is_refused(engine, db_url):
    with engine.begin() as conn:
        conn.execute(schema.schema_version.insert().values(version=schema.SCHEMA_VERSION + 1,
                                                           applied_at=dt.datetime(2030, 1, 1)))
    try:
        with pytest.raises(DatabaseError, match=f"schema version {schema.SCHEMA_VERSION + 1}, newer than this code's"):
            get_engine(db_url)
    finally:  # leave the shared test database usable
        with engine.begin() as conn:
            conn.execute(schema.schema_version.delete().where(
                schema.schema_version.c.version > schema.SCHEMA_VERSION))


def test_safe_url_hides_the_password():
    assert safe_url("mysql+pymysql://iss:s3cret@db.example:3306/iss") == "mysql+pymysql://iss:***@db.example:3306/iss"
    assert safe_url("sqlite:///data/x.db") == "sqlite:///data/x.db"
    assert safe_url("::not a url::") == "<unparseable database URL>"


def test_not_a_url():
    with pytest.raises(DatabaseError, match="is not a database URL"):
        get_engine("just some text")


def test_missing_driver_is_named():
    with pytest.raises(DatabaseError, match=r"postgresql://u:\*\*\*@h/d: .*is the driver installed"):
        get_engine("postgresql://u:pw@h/d")


def test_unreachable_server_names_the_url_with_the_password_hidden():
    with pytest.raises(DatabaseError) as info:
        get_engine("mysql+pymysql://iss:s3cret@127.0.0.1:1/iss")
    message = str(info.value)
    assert "mysql+pymysql://iss:***@127.0.0.1:1/iss" in message and "s3cret" not in message
    assert "Check that the server is running" in message


def test_wrong_password_names_the_url_with_the_password_hidden(mysql_server):
    url = make_url(mysql_server).set(password="definitely-wrong")
    with pytest.raises(DatabaseError) as info:
        get_engine(url.render_as_string(hide_password=False))
    message = str(info.value)
    assert "definitely-wrong" not in message and ":***@" in message
    assert "Access denied" in message and "MYSQL_PASSWORD" in message


def test_sqlite_folder_that_cannot_exist(tmp_path):
    (tmp_path / "file").write_text("a file, not a folder")
    with pytest.raises(DatabaseError, match="cannot create the folder of SQLite database"):
        get_engine(f"sqlite:///{tmp_path / 'file' / 'sub' / 'x.db'}")
