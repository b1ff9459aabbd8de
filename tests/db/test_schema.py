"""The schema: every table the pipeline needs, keys, indexes for its queries, column types."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import inspect, select

from iss.db import schema
from iss.db.queries import upsert


def _indexed_columns(engine, table: str) -> list[list[str]]:
    inspector = inspect(engine)
    indexes = [index["column_names"] for index in inspector.get_indexes(table)]
    indexes += [unique["column_names"] for unique in inspector.get_unique_constraints(table)]
    return indexes


def test_primary_keys(engine):
    inspector = inspect(engine)
    expected = {"pictures": ["pictures_id"], "pictures_rejected": ["filename"], "pictures_location": ["pictures_id"],
                "splits": ["pictures_id"], "models": ["model_id"], "clustering_runs": ["run_id"],
                "pictures_embedding": ["run_id", "pictures_id"], "posters": ["poster_id"],
                "posters_slots": ["poster_id", "slot"], "schema_version": ["version"]}
    for table, columns in expected.items():
        assert inspector.get_pk_constraint(table)["constrained_columns"] == columns, table


def test_indexes_for_the_pipeline_queries(engine):
    assert ["taken_at"] in _indexed_columns(engine, "pictures")  # time ranges, stratified sampling
    assert ["split"] in _indexed_columns(engine, "splits")  # split_ids(engine, "train")
    embedding = _indexed_columns(engine, "pictures_embedding")
    assert ["run_id", "label"] in embedding  # pictures of a cluster
    assert ["run_id", "pictures_x", "pictures_y"] in embedding  # select_close_embedding
    assert ["model_type", "model_name"] in _indexed_columns(engine, "models")
    assert ["clustering_type", "clustering_version", "model_type", "model_name"] in \
        _indexed_columns(engine, "clustering_runs")


def test_file_times_and_sizes_keep_their_precision(engine):
    """An mtime must survive to the millisecond (MySQL FLOAT would round it to a minute) and sizes
    over 2 GB must fit."""
    mtime, size = 1_700_000_123.456789, 5 * 2 ** 30
    with engine.begin() as conn:
        upsert(conn, schema.pictures, [dict(pictures_id="a", filename="a.jpg", taken_at=None, width=1, height=1,
                                            file_size=size, file_mtime=mtime, ingested_at=dt.datetime(2024, 1, 1))])
        upsert(conn, schema.pictures_rejected, [dict(filename="b.jpg", reason="too_large", detail="x",
                                                     file_size=size, file_mtime=mtime,
                                                     rejected_at=dt.datetime(2024, 1, 1))])
    with engine.connect() as conn:
        row = conn.execute(select(schema.pictures.c.file_size, schema.pictures.c.file_mtime)).one()
        rejected = conn.execute(select(schema.pictures_rejected.c.file_size,
                                       schema.pictures_rejected.c.file_mtime)).one()
    assert row.file_size == size and abs(row.file_mtime - mtime) < 1e-3
    assert rejected.file_size == size and abs(rejected.file_mtime - mtime) < 1e-3


def test_longest_ids_and_names_fit(engine):
    long_id, long_name = "x" * 64, "y" * 250 + ".jpeg"
    with engine.begin() as conn:
        upsert(conn, schema.pictures, [dict(pictures_id=long_id, filename=long_id + ".jpg", width=1, height=1,
                                            file_size=1, file_mtime=0.0, ingested_at=dt.datetime(2024, 1, 1))])
        upsert(conn, schema.pictures_rejected, [dict(filename=long_name, reason="bad_id", rejected_at=dt.datetime(2024, 1, 1))])
    with engine.connect() as conn:
        assert conn.execute(select(schema.pictures.c.pictures_id)).scalar_one() == long_id
        assert conn.execute(select(schema.pictures_rejected.c.filename)).scalar_one() == long_name


def test_deleting_a_run_deletes_its_embedding(engine):
    with engine.begin() as conn:
        conn.execute(schema.clustering_runs.insert().values(run_id=1, clustering_type="n2d", clustering_version=1,
                                                            model_type="m", model_name="n",
                                                            created_at=dt.datetime(2024, 1, 1)))
        conn.execute(schema.pictures_embedding.insert(), [dict(run_id=1, pictures_id=f"p{i}", pictures_x=0.0,
                                                               pictures_y=0.0, label=0) for i in range(3)])
    with engine.begin() as conn:
        conn.execute(schema.clustering_runs.delete())
    with engine.connect() as conn:
        assert conn.execute(select(schema.pictures_embedding)).all() == []


def test_mariadb_tables_of_an_older_version_are_converted_to_exact_comparison(mysql_server):
    """Issue 15, item 7: tables created with the server's case-insensitive default collation and a
    255-character file name are converted on the next connection, keeping their rows."""
    from sqlalchemy import create_engine, text

    from iss.db.engine import get_engine

    old = create_engine(mysql_server, future=True)
    schema.metadata.drop_all(old)
    with old.begin() as conn:
        conn.execute(text("CREATE TABLE pictures_rejected (filename VARCHAR(255) NOT NULL PRIMARY KEY, "
                          "reason VARCHAR(32) NOT NULL, detail TEXT, file_size BIGINT, file_mtime DOUBLE, "
                          "rejected_at DATETIME NOT NULL) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"))
        conn.execute(text("INSERT INTO pictures_rejected VALUES ('CaseTest.jpg', 'empty', NULL, 0, 0, NOW())"))
    old.dispose()

    engine = get_engine(mysql_server)
    with engine.connect() as conn:
        collation, width = conn.execute(text(
            "SELECT c.COLLATION_NAME, c.CHARACTER_MAXIMUM_LENGTH FROM information_schema.COLUMNS c WHERE "
            "c.TABLE_SCHEMA = DATABASE() AND c.TABLE_NAME = 'pictures_rejected' AND c.COLUMN_NAME = 'filename'")).one()
    assert (collation, width) == ("utf8mb4_bin", 512)
    with engine.begin() as conn:
        upsert(conn, schema.pictures_rejected, [dict(filename="casetest.jpg", reason="empty", rejected_at=dt.datetime(
            2024, 1, 1))])
    with engine.connect() as conn:
        names = sorted(conn.execute(select(schema.pictures_rejected.c.filename)).scalars())
        tables = dict(conn.execute(text("SELECT TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES "
                                        "WHERE TABLE_SCHEMA = DATABASE()")).all())
    assert names == ["CaseTest.jpg", "casetest.jpg"]
    assert {tables[name] for name in schema.metadata.tables} == {"utf8mb4_bin"}
    schema.metadata.drop_all(engine)
    engine.dispose()
