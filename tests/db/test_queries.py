"""Shared queries: idempotent upserts, counts, replacement, and the nearest-in-2-D look-up."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from iss.db import schema
from iss.db.queries import count, existing_ids, replace_rows, select_close_embedding, upsert

NOW = dt.datetime(2024, 1, 1)


def _location(pid, lat, text="x", source="history"):
    return dict(pictures_id=pid, pictures_latitude=lat, pictures_longitude=0.0, pictures_location_text=text,
                source=source, is_day=True)


def test_upsert_inserts_then_updates_without_duplicates(engine):
    rows = [_location(f"p{i}", float(i)) for i in range(5)]
    with engine.begin() as conn:
        assert upsert(conn, schema.pictures_location, rows) == 5
    with engine.begin() as conn:
        upsert(conn, schema.pictures_location, rows)  # the same again
        upsert(conn, schema.pictures_location, [_location("p1", 42.0, "changed"), _location("p9", 9.0)])
    with engine.connect() as conn:
        assert count(conn, schema.pictures_location) == 6
        row = conn.execute(select(schema.pictures_location).where(schema.pictures_location.c.pictures_id == "p1")).one()
        assert (row.pictures_latitude, row.pictures_location_text) == (42.0, "changed")
        assert existing_ids(conn, schema.pictures_location) == {"p0", "p1", "p2", "p3", "p4", "p9"}
        assert count(conn, schema.pictures_location, schema.pictures_location.c.pictures_latitude > 3) == 3


def test_upsert_updates_only_the_columns_asked(engine):
    with engine.begin() as conn:
        upsert(conn, schema.pictures_location, [_location("p", 1.0, "first")])
        upsert(conn, schema.pictures_location, [_location("p", 2.0, "second")], update=["pictures_latitude"])
    with engine.connect() as conn:
        row = conn.execute(select(schema.pictures_location)).one()
    assert (row.pictures_latitude, row.pictures_location_text) == (2.0, "first")


def test_upsert_with_only_key_columns_is_a_no_op_on_clash(engine):
    with engine.begin() as conn:
        upsert(conn, schema.splits, [dict(pictures_id="a", split="train", seed=1)])
        upsert(conn, schema.splits, [dict(pictures_id="a", split="test", seed=1)], update=[])
    with engine.connect() as conn:
        assert conn.execute(select(schema.splits.c.split)).scalar_one() == "train"


def test_upsert_on_a_natural_key_with_an_autoincrement_id(engine):
    """models and clustering_runs are keyed by a unique constraint, their id assigned by the database."""
    row = dict(model_type="simple_conv", model_name="demo", path="models/a", created_at=NOW)
    with engine.begin() as conn:
        upsert(conn, schema.models, [row])
        upsert(conn, schema.models, [dict(row, path="models/b", metrics={"loss": 0.1})])
        upsert(conn, schema.models, [dict(row, model_name="other")])
    with engine.connect() as conn:
        rows = {r.model_name: r for r in conn.execute(select(schema.models))}
    assert set(rows) == {"demo", "other"}
    assert rows["demo"].path == "models/b" and rows["demo"].metrics == {"loss": 0.1}


def test_upsert_of_nothing(engine):
    with engine.begin() as conn:
        assert upsert(conn, schema.splits, []) == 0


def test_a_failing_batch_is_rolled_back_entirely(engine):
    with pytest.raises(RuntimeError):
        with engine.begin() as conn:
            upsert(conn, schema.splits, [dict(pictures_id=f"p{i}", split="train", seed=0) for i in range(10)])
            raise RuntimeError("failure after the rows were sent")
    with engine.connect() as conn:
        assert count(conn, schema.splits) == 0


def test_replace_rows(engine):
    with engine.begin() as conn:
        upsert(conn, schema.splits, [dict(pictures_id=f"p{i}", split="train", seed=0) for i in range(4)])
        replace_rows(conn, schema.splits, schema.splits.c.pictures_id.in_(["p0", "p1"]),
                     [dict(pictures_id="p0", split="test", seed=1)])
    with engine.connect() as conn:
        assert {r.pictures_id: r.split for r in conn.execute(select(schema.splits))} == \
            {"p0": "test", "p2": "train", "p3": "train"}


def _run(conn, run_id: int, points: dict[str, tuple[float, float]]):
    conn.execute(schema.clustering_runs.insert().values(run_id=run_id, clustering_type="n2d", clustering_version=run_id,
                                                        model_type="m", model_name="n", created_at=NOW))
    conn.execute(schema.pictures_embedding.insert(), [dict(run_id=run_id, pictures_id=pid, pictures_x=x, pictures_y=y,
                                                           label=k % 2) for k, (pid, (x, y)) in enumerate(points.items())])


def test_select_close_embedding_returns_the_nearest_pictures_of_the_run(engine):
    with engine.begin() as conn:
        _run(conn, 1, {"a": (0.0, 0.0), "b": (1.0, 1.0), "c": (3.0, 4.0), "d": (-0.5, 0.0), "e": (10.0, 10.0)})
        _run(conn, 2, {"z": (0.1, 0.1)})  # another run: never returned for run 1
    close = select_close_embedding(engine, 1, 0.0, 0.0, limit=3)
    assert [c["pictures_id"] for c in close] == ["a", "d", "b"]
    assert [c["distance"] for c in close] == pytest.approx([0.0, 0.5, 2 ** 0.5])
    assert close[2]["pictures_x"] == 1.0 and close[2]["label"] == 1
    assert [c["pictures_id"] for c in select_close_embedding(engine, 1, 3.0, 4.0, limit=1)] == ["c"]
    assert [c["pictures_id"] for c in select_close_embedding(engine, 2, 0.0, 0.0)] == ["z"]
    assert select_close_embedding(engine, 3, 0.0, 0.0) == []
