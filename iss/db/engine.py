"""Connecting to the database and creating the schema, with errors that say what to check."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from sqlalchemy import String, create_engine, event, inspect, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from iss.db import schema

log = logging.getLogger(__name__)


class DatabaseError(Exception):
    """The database cannot be reached or its schema does not match."""


def safe_url(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def _enable_sqlite_foreign_keys(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def get_engine(url: str, create: bool = True) -> Engine:
    """An engine for ``url`` whose connection has been checked, with the schema created.

    Parameters
    ----------
    url : str
        ``sqlite:///path.db`` or ``mysql+pymysql://user:password@host:port/database``.
    create : bool, default=True
        Create missing tables (idempotent) and check the schema version.

    Raises
    ------
    DatabaseError
        Naming the URL (password hidden) and what to check.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(f"database.url {url!r} is not a database URL: {exc}") from exc
    kwargs = {"future": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            try:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(f"cannot create the folder of SQLite database {safe_url(url)}: {exc}; "
                                    f"check database.url") from exc
    else:
        kwargs.update(pool_pre_ping=True, pool_recycle=3600)
    try:
        engine = create_engine(parsed, **kwargs)
    except (ArgumentError, ImportError) as exc:
        raise DatabaseError(f"cannot use database {safe_url(url)}: {exc} (is the driver installed?)") from exc
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        raise DatabaseError(
            f"cannot connect to database {safe_url(url)}: {exc.orig}. Check that the server is running and "
            f"reachable, that the database exists and that the user and password (MYSQL_PASSWORD) are right"
        ) from exc
    if create:
        create_schema(engine)
    return engine


def lost_database_error(url: str, exc: SQLAlchemyError) -> DatabaseError:
    """The one-sentence error for a database that failed in the middle of a step (see ``step_engine``)."""
    orig = getattr(exc, "orig", None) or exc
    reason = " ".join(str(orig).split())[:300]
    return DatabaseError(
        f"database {safe_url(url)} failed in the middle of the step ({type(orig).__name__}: {reason}); what was "
        f"written before is kept. Check that the server is running and the database and its tables still exist "
        f"(re-create a dropped database), then run the step again: it continues where it stopped")


def create_schema(engine: Engine) -> None:
    """Create every missing table and record the schema version (idempotent).

    On MySQL/MariaDB, tables made by older versions are brought up to date: converted to the exact
    (binary) collation, and string columns widened to the current schema.
    """
    try:
        schema.metadata.create_all(engine)
        if engine.dialect.name in ("mysql", "mariadb"):
            _upgrade_mysql_tables(engine)
        with engine.begin() as conn:
            versions = [row.version for row in conn.execute(select(schema.schema_version.c.version))]
            if not versions:
                conn.execute(schema.schema_version.insert().values(
                    version=schema.SCHEMA_VERSION, applied_at=dt.datetime.now()))
            elif max(versions) > schema.SCHEMA_VERSION:
                raise DatabaseError(
                    f"database {safe_url(str(engine.url))} has schema version {max(versions)}, newer than this "
                    f"code's {schema.SCHEMA_VERSION}; update the code"
                )
    except SQLAlchemyError as exc:
        raise DatabaseError(f"cannot create the schema in {safe_url(str(engine.url))}: {exc}") from exc


def _upgrade_mysql_tables(engine: Engine) -> None:
    """Convert our tables to ``utf8mb4_bin`` and widen string columns narrower than the schema's (idempotent)."""
    names = list(schema.metadata.tables)
    with engine.begin() as conn:
        found = conn.execute(text(
            "SELECT TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"))
        collations = {row[0]: row[1] for row in found if row[0] in names}
        widths = {(row[0], row[1]): row[2] for row in conn.execute(text(
            "SELECT TABLE_NAME, COLUMN_NAME, CHARACTER_MAXIMUM_LENGTH FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND DATA_TYPE = 'varchar'"))}
        statements = [f"ALTER TABLE `{name}` CONVERT TO CHARACTER SET {schema.MYSQL_CHARSET} "
                      f"COLLATE {schema.MYSQL_COLLATION}"
                      for name, collation in collations.items() if collation != schema.MYSQL_COLLATION]
        for table in schema.metadata.tables.values():
            for column in table.columns:
                old = widths.get((table.name, column.name))
                if isinstance(column.type, String) and column.type.length and old and old < column.type.length:
                    statements.append(f"ALTER TABLE `{table.name}` MODIFY `{column.name}` "
                                      f"{column.type.compile(engine.dialect)} {'NULL' if column.nullable else 'NOT NULL'}")
        if statements:
            conn.execute(text("SET FOREIGN_KEY_CHECKS = 0"))  # a referenced column changes collation too
            for statement in statements:
                log.info("schema upgrade: %s", statement)
                conn.execute(text(statement))
            conn.execute(text("SET FOREIGN_KEY_CHECKS = 1"))


def table_names(engine: Engine) -> list[str]:
    """The tables present in the database."""
    return sorted(inspect(engine).get_table_names())
