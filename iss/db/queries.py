"""Queries shared by the steps: idempotent upserts and the original project's look-ups."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Table, UniqueConstraint, and_, delete, func, select
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from iss.db import schema


def upsert(conn: Connection, table: Table, rows: Sequence[dict], update: Iterable[str] | None = None) -> int:
    """Insert ``rows``, updating the existing row on a primary-key or unique clash.

    Parameters
    ----------
    conn : Connection
        An open connection; the caller's transaction makes the batch atomic.
    table : Table
    rows : sequence of dict
        All with the same keys.
    update : iterable of str, optional
        Columns to overwrite on a clash. Default: every non-key column given.

    Returns
    -------
    int
        Number of rows given.
    """
    if not rows:
        return 0
    keys = {c.name for c in table.primary_key.columns}
    if not keys <= set(rows[0]):
        # An autoincrement id not given (models, clustering_runs): the clash to catch is on the
        # natural key, a unique constraint (SQLite needs it named; MySQL catches any unique key).
        for constraint in table.constraints:
            names = {c.name for c in constraint.columns}
            if isinstance(constraint, UniqueConstraint) and names <= set(rows[0]):
                keys = names
                break
    columns = list(update) if update is not None else [k for k in rows[0] if k not in keys]
    dialect = conn.dialect.name
    if dialect == "sqlite":
        stmt = sqlite_insert(table)
        stmt = (stmt.on_conflict_do_update(index_elements=sorted(keys), set_={c: stmt.excluded[c] for c in columns})
                if columns else stmt.on_conflict_do_nothing())
    elif dialect in ("mysql", "mariadb"):
        stmt = mysql_insert(table)
        first_key = sorted(keys)[0]
        stmt = stmt.on_duplicate_key_update(
            {c: stmt.inserted[c] for c in columns} if columns else {first_key: stmt.inserted[first_key]})
    else:
        raise NotImplementedError(f"upsert is not implemented for the {dialect!r} dialect (use SQLite or MySQL)")
    conn.execute(stmt, list(rows))
    return len(rows)


def count(conn: Connection, table: Table, *where) -> int:
    """Number of rows of ``table`` matching ``where``."""
    stmt = select(func.count()).select_from(table)
    if where:
        stmt = stmt.where(and_(*where))
    return int(conn.execute(stmt).scalar_one())


def existing_ids(conn: Connection, table: Table, column: str = "pictures_id") -> set[str]:
    """Every value of ``column`` in ``table``."""
    return {row[0] for row in conn.execute(select(table.c[column]))}


def replace_rows(conn: Connection, table: Table, where, rows: Sequence[dict]) -> int:
    """Delete the rows matching ``where`` then insert ``rows`` (one transaction: the caller's)."""
    conn.execute(delete(table).where(where))
    if rows:
        conn.execute(table.insert(), list(rows))
    return len(rows)


def select_close_embedding(engine: Engine, run_id: int, x: float, y: float, limit: int = 10) -> list[dict]:
    """Pictures of a clustering run nearest to the 2-D point ``(x, y)`` (the original's query).

    Returns
    -------
    list of dict
        ``pictures_id``, ``pictures_x``, ``pictures_y``, ``label``, ``distance``, nearest first.
    """
    e = schema.pictures_embedding
    distance = ((e.c.pictures_x - x) * (e.c.pictures_x - x) + (e.c.pictures_y - y) * (e.c.pictures_y - y))
    stmt = (select(e.c.pictures_id, e.c.pictures_x, e.c.pictures_y, e.c.label, distance.label("d2"))
            .where(e.c.run_id == run_id).order_by(distance, e.c.pictures_id).limit(limit))
    with engine.connect() as conn:
        return [dict(pictures_id=r.pictures_id, pictures_x=r.pictures_x, pictures_y=r.pictures_y,
                     label=r.label, distance=float(r.d2) ** 0.5) for r in conn.execute(stmt)]


def filenames_of(engine: Engine, ids) -> dict[str, str]:
    """``{pictures_id: filename}`` (relative to ``paths.collections``) for the ids present in ``pictures``."""
    ids = sorted(set(ids))
    p = schema.pictures
    found: dict[str, str] = {}
    with engine.connect() as conn:
        for start in range(0, len(ids), 500):  # keep IN lists short on both backends
            chunk = ids[start:start + 500]
            found.update(conn.execute(select(p.c.pictures_id, p.c.filename).where(p.c.pictures_id.in_(chunk))).all())
    return found
