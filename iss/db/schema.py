"""Database schema (SQLAlchemy Core), the same on SQLite and MySQL/MariaDB.

Table names from the original project stay (``pictures_location``, ``pictures_embedding``,
``posters``) so its SQL still reads naturally. Picture ids are derived from the file names
(``20171113-181340`` for the ISS collection, see :mod:`iss.data.ids`), strings so any collection
fits; ``filename`` is the picture's path relative to the collection folder.

Every string compares exactly on every backend: SQLite's default collation is binary, and on
MySQL/MariaDB every table is ``utf8mb4`` with the binary collation ``utf8mb4_bin`` (the server
default, ``utf8mb4_general_ci``, would make ``CaseTest`` and ``casetest`` one key, and drop a
picture). :func:`iss.db.engine.create_schema` converts tables made by older versions.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

SCHEMA_VERSION = 1

metadata = MetaData()

ID = String(64)  # picture id (iss.data.ids)
FILENAME = String(512)  # path relative to the collection folder (= iss.data.listing.MAX_FILENAME_LENGTH)
# MySQL/MariaDB table options: full Unicode, and exact (binary) comparison of ids and names.
MYSQL_CHARSET, MYSQL_COLLATION = "utf8mb4", "utf8mb4_bin"
EXACT = {"mysql_charset": MYSQL_CHARSET, "mysql_collate": MYSQL_COLLATION}

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", DateTime, nullable=False),
    **EXACT,
)

pictures = Table(
    "pictures",
    metadata,
    Column("pictures_id", ID, primary_key=True),
    Column("filename", FILENAME, nullable=False),
    Column("taken_at", DateTime, nullable=True),
    Column("taken_at_source", String(16), nullable=True),  # filename | exif | mtime
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("file_size", BigInteger, nullable=False),  # INT overflows at 2 GB
    Column("file_mtime", Double, nullable=False),  # MySQL FLOAT would round it to ~1 min
    Column("cache_index", Integer, nullable=True),  # row in the ingest cache
    Column("ingested_at", DateTime, nullable=False),
    Index("ix_pictures_taken_at", "taken_at"),
    **EXACT,
)

pictures_rejected = Table(
    "pictures_rejected",
    metadata,
    Column("filename", FILENAME, primary_key=True),
    Column("reason", String(32), nullable=False),  # empty | truncated | ... (images.REASONS, listing.SKIP_REASONS)
    Column("detail", Text, nullable=True),
    Column("file_size", BigInteger, nullable=True),
    Column("file_mtime", Double, nullable=True),
    Column("rejected_at", DateTime, nullable=False),
    **EXACT,
)

pictures_location = Table(
    "pictures_location",
    metadata,
    Column("pictures_id", ID, primary_key=True),
    Column("pictures_latitude", Float, nullable=True),
    Column("pictures_longitude", Float, nullable=True),
    Column("pictures_location_text", String(128), nullable=True),
    Column("source", String(16), nullable=False),  # history | tle
    Column("is_day", Boolean, nullable=True),
    **EXACT,
)

splits = Table(
    "splits",
    metadata,
    Column("pictures_id", ID, primary_key=True),
    Column("split", String(8), nullable=False),  # train | test | valid
    Column("seed", Integer, nullable=False),
    Index("ix_splits_split", "split"),
    **EXACT,
)

models = Table(
    "models",
    metadata,
    Column("model_id", Integer, primary_key=True, autoincrement=True),
    Column("model_type", String(32), nullable=False),
    Column("model_name", String(64), nullable=False),
    Column("path", String(512), nullable=False),
    Column("config", JSON, nullable=True),
    Column("metrics", JSON, nullable=True),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("model_type", "model_name", name="uq_models_type_name"),
    **EXACT,
)

clustering_runs = Table(
    "clustering_runs",
    metadata,
    Column("run_id", Integer, primary_key=True, autoincrement=True),
    Column("clustering_type", String(32), nullable=False),
    Column("clustering_version", Integer, nullable=False),
    Column("model_type", String(32), nullable=False),
    Column("model_name", String(64), nullable=False),
    Column("params", JSON, nullable=True),
    Column("metrics", JSON, nullable=True),
    Column("n_clusters", Integer, nullable=True),
    Column("path", String(512), nullable=True),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("clustering_type", "clustering_version", "model_type", "model_name", name="uq_clustering_runs"),
    **EXACT,
)

pictures_embedding = Table(
    "pictures_embedding",
    metadata,
    Column("run_id", Integer, ForeignKey("clustering_runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("pictures_id", ID, primary_key=True),
    Column("pictures_x", Float, nullable=False),
    Column("pictures_y", Float, nullable=False),
    Column("label", Integer, nullable=False),  # -1 = noise (hdbscan)
    Column("silhouette", Float, nullable=True),
    Index("ix_embedding_run_label", "run_id", "label"),
    Index("ix_embedding_run_xy", "run_id", "pictures_x", "pictures_y"),
    **EXACT,
)

cluster_names = Table(
    "cluster_names",
    metadata,
    Column("run_id", Integer, ForeignKey("clustering_runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("label", Integer, primary_key=True, autoincrement=False),
    Column("auto_name", String(255), nullable=False),  # described from the cluster's pictures
    Column("name", String(255), nullable=True),  # given by a person; shown instead of auto_name
    Column("description", JSON, nullable=True),  # the measurements behind auto_name
    Column("run_created_at", DateTime, nullable=False),  # the run it describes: a re-run makes it stale
    Column("updated_at", DateTime, nullable=False),
)

posters = Table(
    "posters",
    metadata,
    Column("poster_id", String(64), primary_key=True),
    Column("config_id", String(64), nullable=False),
    Column("seed", Integer, nullable=True),
    Column("run_id", Integer, nullable=True),
    Column("width_px", Integer, nullable=False),
    Column("height_px", Integer, nullable=False),
    Column("dpi", Integer, nullable=False),
    Column("path", String(512), nullable=False),
    Column("params", JSON, nullable=True),
    Column("created_at", DateTime, nullable=False),
    **EXACT,
)

posters_slots = Table(
    "posters_slots",
    metadata,
    Column("poster_id", String(64), ForeignKey("posters.poster_id", ondelete="CASCADE"), primary_key=True),
    Column("slot", Integer, primary_key=True, autoincrement=False),
    Column("position", String(32), nullable=True),
    Column("pictures_id", ID, nullable=False),
    **EXACT,
)
