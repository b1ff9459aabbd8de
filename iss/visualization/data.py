"""What the reports read: clustering runs and the joined picture tables, as pandas frames.

Every report reads the database through these functions, so the scatter, the mosaics, the facets
pages and the notebook see the same columns with the same types on SQLite and MySQL.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
from PIL import Image
from sqlalchemy import select
from sqlalchemy.engine import Engine

from iss.artefacts import atomic_path
from iss.data.cache import ImageCache
from iss.db import schema


class ReportError(Exception):
    """A report cannot be made from what is in the database or on disk."""


RUN_COLUMNS = ("run_id", "clustering_type", "clustering_version", "model_type", "model_name", "params",
               "metrics", "n_clusters", "path", "created_at")


def list_runs(engine: Engine) -> list[dict]:
    """Every clustering run (a dict of its ``clustering_runs`` columns), oldest first."""
    r = schema.clustering_runs
    with engine.connect() as conn:
        rows = conn.execute(select(*[r.c[c] for c in RUN_COLUMNS]).order_by(r.c.run_id)).mappings().all()
    return [dict(row) for row in rows]


def get_run(engine: Engine, run_id: int | None = None) -> dict:
    """One clustering run; the latest one when ``run_id`` is None.

    Raises
    ------
    ReportError
        When there is no such run, naming the runs that exist.
    """
    runs = list_runs(engine)
    if not runs:
        raise ReportError("no clustering run in the database; run `make exec_clustering` first")
    if run_id is None:
        return runs[-1]
    for run in runs:
        if run["run_id"] == int(run_id):
            return run
    raise ReportError(f"clustering run {run_id} not found; existing runs: "
                      f"{', '.join(str(r['run_id']) for r in runs)}")


def run_folder_name(run: dict) -> str:
    """Folder of a run's reports: ``run-<id>-<type>-<model_name>-v<version>`` (file-system safe)."""
    raw = f"run-{run['run_id']}-{run['clustering_type']}-{run['model_name']}-v{run['clustering_version']}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw)


def _picture_columns():
    p, loc, s = schema.pictures, schema.pictures_location, schema.splits
    return [p.c.taken_at, p.c.taken_at_source, p.c.width, p.c.height, p.c.file_size,
            loc.c.pictures_latitude.label("latitude"), loc.c.pictures_longitude.label("longitude"),
            loc.c.pictures_location_text.label("location"), loc.c.source.label("location_source"),
            loc.c.is_day, s.c.split]


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Same dtypes on every backend (SQLite returns ints for booleans, MySQL Decimal-free floats...)."""
    frame["taken_at"] = pd.to_datetime(frame["taken_at"], errors="coerce")
    for column in ("latitude", "longitude", "pictures_x", "pictures_y", "silhouette"):
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in ("width", "height", "file_size"):
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    if "is_day" in frame:
        frame["is_day"] = frame["is_day"].map(lambda v: None if pd.isna(v) else bool(v)).astype("boolean")
    for column in ("location", "location_source", "split", "taken_at_source"):
        if column in frame:
            frame[column] = frame[column].astype("string")
    if "label" in frame:
        frame["label"] = frame["label"].astype("int64")
    return frame


def load_run_frame(engine: Engine, run_id: int) -> pd.DataFrame:
    """Every picture of a clustering run with its coordinates, cluster and picture fields.

    Returns
    -------
    pandas.DataFrame
        One row per picture of the run, ordered by ``pictures_id``: ``pictures_id``, ``pictures_x``,
        ``pictures_y``, ``label`` (int), ``silhouette`` (float, NaN if unknown), ``taken_at``
        (datetime64), ``taken_at_source``, ``width``, ``height``, ``file_size``, ``latitude``,
        ``longitude``, ``location``, ``location_source``, ``is_day`` (nullable bool), ``split``.
        Picture fields are missing (NA) for embedded ids absent from ``pictures``.
    """
    e, p, loc, s = schema.pictures_embedding, schema.pictures, schema.pictures_location, schema.splits
    stmt = (select(e.c.pictures_id, e.c.pictures_x, e.c.pictures_y, e.c.label, e.c.silhouette, *_picture_columns())
            .select_from(e.outerjoin(p, p.c.pictures_id == e.c.pictures_id)
                         .outerjoin(loc, loc.c.pictures_id == e.c.pictures_id)
                         .outerjoin(s, s.c.pictures_id == e.c.pictures_id))
            .where(e.c.run_id == int(run_id)).order_by(e.c.pictures_id))
    with engine.connect() as conn:
        result = conn.execute(stmt)
        frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    if frame.empty:
        raise ReportError(f"clustering run {run_id} has no rows in pictures_embedding; re-run the clustering")
    return _normalise(frame)


def load_pictures_frame(engine: Engine, run_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """Every picture joined with its location, split and, per run, its embedding.

    Parameters
    ----------
    engine : Engine
    run_ids : sequence of int, optional
        Runs whose ``x``, ``y``, ``label`` and ``silhouette`` become columns ``<field>_run<id>``.
        Default: every run.

    Returns
    -------
    pandas.DataFrame
        One row per picture (ordered by ``taken_at`` then id) with the columns of
        :func:`load_run_frame` except the embedding ones, plus, for each run, ``label_run<id>``
        (nullable Int64: pictures not in that run are NA), ``silhouette_run<id>``, ``x_run<id>``,
        ``y_run<id>``.
    """
    p, loc, s, e = schema.pictures, schema.pictures_location, schema.splits, schema.pictures_embedding
    stmt = (select(p.c.pictures_id, *_picture_columns())
            .select_from(p.outerjoin(loc, loc.c.pictures_id == p.c.pictures_id)
                         .outerjoin(s, s.c.pictures_id == p.c.pictures_id))
            .order_by(p.c.pictures_id))
    with engine.connect() as conn:
        result = conn.execute(stmt)
        frame = pd.DataFrame(result.all(), columns=list(result.keys()))
        if run_ids is None:
            run_ids = [r["run_id"] for r in list_runs(engine)]
        for run_id in run_ids:
            rows = conn.execute(select(e.c.pictures_id, e.c.label, e.c.silhouette, e.c.pictures_x, e.c.pictures_y)
                                .where(e.c.run_id == int(run_id))).all()
            emb = pd.DataFrame(rows, columns=["pictures_id", f"label_run{run_id}", f"silhouette_run{run_id}",
                                              f"x_run{run_id}", f"y_run{run_id}"])
            emb[f"label_run{run_id}"] = emb[f"label_run{run_id}"].astype("Int64")
            for column in (f"silhouette_run{run_id}", f"x_run{run_id}", f"y_run{run_id}"):
                emb[column] = pd.to_numeric(emb[column], errors="coerce").astype("float64")
            frame = frame.merge(emb, on="pictures_id", how="left")
    frame = _normalise(frame)
    return frame.sort_values(["taken_at", "pictures_id"], na_position="last", kind="stable").reset_index(drop=True)


# --- small formatting helpers shared by the pages ---------------------------------------------------

def format_location(latitude, longitude, text) -> str:
    """``"Pacific Ocean · 12.3°N 45.6°W"``, or ``"unknown"`` when nothing is known."""
    parts = []
    if isinstance(text, str) and text:
        parts.append(text)
    if latitude == latitude and longitude == longitude and latitude is not None and longitude is not None:
        parts.append(f"{abs(latitude):.1f}°{'N' if latitude >= 0 else 'S'} "
                     f"{abs(longitude):.1f}°{'E' if longitude >= 0 else 'W'}")
    return " · ".join(parts) if parts else "unknown"


def format_time(value) -> str:
    """``"2017-11-13 18:13"`` or ``"unknown"``."""
    return "unknown" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def thumb_file_name(picture_id: str) -> str:
    """File name of a picture's thumbnail (the id is a file-name stem, so it is a valid name)."""
    return f"{picture_id}.jpg"


def thumb_url(picture_id: str, prefix: str) -> str:
    """URL of a thumbnail relative to a page, ``prefix`` being the thumbnail folder's URL."""
    return f"{prefix.rstrip('/')}/{quote(thumb_file_name(picture_id))}"


def write_thumbnails(cache: ImageCache, ids: Sequence[str], out_dir: str | Path, quality: int = 80,
                     batch: int = 1024) -> int:
    """Write each picture's cached thumbnail as ``out_dir/<id>.jpg`` (existing files are kept).

    Thumbnails never change for an id (the cache is append-only), so re-running only writes the
    new ones. JPEG with optimised Huffman tables keeps a 96x54 thumbnail near 2-4 kB.

    Returns
    -------
    int
        Files written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    missing = [i for i in ids if not (out_dir / thumb_file_name(i)).exists()]
    for start in range(0, len(missing), batch):
        chunk = missing[start:start + batch]
        for picture_id, pixels in zip(chunk, cache.get_thumbs(chunk)):
            target = out_dir / thumb_file_name(picture_id)
            with atomic_path(target) as tmp:  # never leave a half-written thumbnail that a re-run would keep
                Image.fromarray(pixels).save(tmp, format="JPEG", quality=int(quality), optimize=True)
    return len(missing)


def thumb_data_uris(cache: ImageCache, ids: Sequence[str], quality: int = 75) -> list[str]:
    """``data:image/jpeg;base64,...`` thumbnails, for places where files beside a page cannot be
    served (a notebook's output). Pages use :func:`write_thumbnails` instead."""
    import base64
    import io

    uris = []
    for pixels in cache.get_thumbs(list(ids)):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=int(quality), optimize=True)
        uris.append("data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"))
    return uris


def cache_for(cfg) -> ImageCache:
    """The ingest cache of a config (raising the cache's own 'run populate_db' error if absent)."""
    return ImageCache(cfg.path("cache"))


def cluster_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per cluster: ``label``, ``count``, ``mean_silhouette``, ``share`` (of pictures), by label."""
    grouped = frame.groupby("label", sort=True)
    summary = pd.DataFrame({"count": grouped.size(), "mean_silhouette": grouped["silhouette"].mean()})
    summary["share"] = summary["count"] / summary["count"].sum()
    return summary.reset_index()


def as_float_array(values) -> np.ndarray:
    """Float64 numpy array with NaN for missing values."""
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
