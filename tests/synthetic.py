"""A synthetic clustering run written straight into a database and an ingest cache.

Tests, the scatter benchmark and anyone trying the reports without training a model need a run of
known shape: ``make_synthetic_run`` writes the same tables and files the real pipeline writes
(``pictures``, ``pictures_location``, ``splits``, ``clustering_runs``, ``pictures_embedding``, the
ImageCache and a latents ``.npz``), with thumbnails that have real photographic JPEG entropy
(low-frequency "clouds" plus grain, a horizon or a dark night scene per cluster) rather than flat
colours, so page sizes measured on it are honest.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import silhouette_samples
from sqlalchemy import delete, select

from iss.data.cache import ImageCache
from iss.db import schema
from iss.db.queries import upsert

LOCATIONS = ["Pacific Ocean", "Atlantic Ocean", "Indian Ocean", "Africa", "South America", "Australia",
             "Asia", "Europe", "North America", "Southern Ocean"]

# (sky, ground, brightness) of each synthetic kind; cluster k uses kind k % len(KINDS)
KINDS = [
    ((5, 8, 20), (60, 110, 170), 1.0),     # horizon over ocean
    ((200, 205, 210), (90, 120, 150), 1.0),  # straight down, clouds over sea
    ((2, 2, 6), (20, 18, 30), 0.35),       # night with city lights
    ((250, 200, 120), (150, 90, 60), 1.2),  # sun glare
    ((30, 40, 90), (30, 40, 90), 0.6),     # live is off (blue screen with noise)
    ((10, 10, 25), (160, 130, 90), 1.0),   # horizon over desert
]


@dataclass
class SyntheticRun:
    """What :func:`make_synthetic_run` wrote."""

    run_id: int
    ids: list[str]
    labels: np.ndarray
    latents_path: Path


def _interpolation_matrix(size: int, grid: int) -> np.ndarray:
    """(size, grid) float32 matrix doing 1-D linear interpolation from ``grid`` to ``size`` samples."""
    positions = np.linspace(0, grid - 1, size)
    low = np.floor(positions).astype(int)
    high = np.minimum(low + 1, grid - 1)
    weight = (positions - low).astype(np.float32)
    matrix = np.zeros((size, grid), dtype=np.float32)
    matrix[np.arange(size), low] += 1 - weight
    matrix[np.arange(size), high] += weight
    return matrix


def _upsample(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of (n, gh, gw) grids to (n, height, width), as two matrix products."""
    rows = _interpolation_matrix(height, grid.shape[1])
    cols = _interpolation_matrix(width, grid.shape[2])
    return rows @ grid.astype(np.float32) @ cols.T


def synthetic_thumbs(labels: np.ndarray, height: int = 54, width: int = 96, seed: int = 0) -> np.ndarray:
    """Photo-like thumbnails, one per label, uint8 of shape (n, height, width, 3)."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    clouds = _upsample(rng.random((n, 7, 12), dtype=np.float32), height, width)  # low-frequency texture
    clouds = clouds * 0.7 + 0.3 * _upsample(rng.random((n, 14, 24), dtype=np.float32), height, width)
    rows = (np.arange(height, dtype=np.float32) / height)[None, :, None]
    cols = (np.arange(width, dtype=np.float32) / width)[None, None, :]
    # a tilted, curved limb at a random height per picture
    horizon = (rng.uniform(0.2, 0.6, n).astype(np.float32)[:, None, None]
               + rng.uniform(-0.15, 0.15, n).astype(np.float32)[:, None, None] * (cols - 0.5)
               + 0.25 * (cols - 0.5) ** 2)
    out = np.empty((n, height, width, 3), dtype=np.float32)
    for kind_index, (sky, ground, bright) in enumerate(KINDS):
        members = np.flatnonzero(labels % len(KINDS) == kind_index)
        if members.size == 0:
            continue
        below = (rows > horizon[members]).astype(np.float32)
        texture = clouds[members]
        for channel in range(3):
            base = sky[channel] * (1 - below) + ground[channel] * below * (0.55 + 0.9 * texture)
            out[members, :, :, channel] = base * np.float32(bright)
    if np.any(labels % len(KINDS) == 2):  # city lights on night pictures
        night = np.flatnonzero(labels % len(KINDS) == 2)
        lights = rng.random((night.size, height, width)) > 0.985
        out[night] += lights[..., None] * np.array([255, 200, 120], dtype=np.float32)
    out += rng.standard_normal(out.shape, dtype=np.float32) * 9  # sensor grain: real JPEG entropy
    return np.clip(out, 0, 255).astype(np.uint8)


def make_synthetic_run(cfg, engine, n_pictures: int = 60, n_clusters: int = 4, seed: int = 0,
                       clustering_type: str = "n2d", model_type: str = "simple_conv", model_name: str = "synthetic",
                       latent_dim: int = 16, chunk: int = 2048,
                       start: dt.datetime = dt.datetime(2017, 11, 13, 18, 13, 40)) -> SyntheticRun:
    """Write a complete synthetic clustering run (database rows, ImageCache, latents).

    Parameters
    ----------
    cfg : Config
        Where the cache (``paths.cache``) and latents (``paths.latents``) go.
    engine : Engine
        Database with the schema created.
    n_pictures : int, default=60
    n_clusters : int, default=4
    seed : int, default=0
    clustering_type, model_type, model_name : str
        Recorded in ``clustering_runs``; re-running with the same ones replaces that run's rows.
    latent_dim : int, default=16
    chunk : int, default=2048
        Pictures generated and appended to the cache at once (bounds memory).
    start : datetime
        Time of the first picture (one every 20 minutes; the ids are ``%Y%m%d-%H%M%S``).

    Returns
    -------
    SyntheticRun
    """
    rng = np.random.default_rng(seed)
    times = [start + dt.timedelta(minutes=20 * i) for i in range(n_pictures)]
    ids = [t.strftime("%Y%m%d-%H%M%S") for t in times]
    labels = rng.integers(0, n_clusters, n_pictures)
    labels[:n_clusters] = np.arange(n_clusters)  # every cluster is present
    centres = rng.normal(0, 6, (n_clusters, 2))
    spread = rng.uniform(0.6, 1.6, n_clusters)
    xy = centres[labels] + rng.normal(0, 1, (n_pictures, 2)) * spread[labels, None]
    silhouettes = silhouette_samples(xy, labels) if n_clusters > 1 else np.zeros(n_pictures)
    latent_centres = rng.normal(0, 3, (n_clusters, latent_dim))
    latents = (latent_centres[labels] + rng.normal(0, 1, (n_pictures, latent_dim))).astype(np.float32)

    cache = ImageCache(cfg.path("cache"), input_size=(48, 27), thumb_size=(96, 54))
    for begin in range(0, n_pictures, chunk):
        part = slice(begin, begin + chunk)
        thumbs = synthetic_thumbs(labels[part], seed=seed + begin)
        inputs = thumbs.reshape(-1, 27, 2, 48, 2, 3).mean(axis=(2, 4)).astype(np.uint8)
        cache.append(ids[part], inputs, thumbs)

    now = dt.datetime.now()
    phase = np.arange(n_pictures) * 0.41
    latitude = 51.6 * np.sin(phase)
    longitude = ((np.arange(n_pictures) * 97.3) % 360) - 180
    has_location = rng.random(n_pictures) < 0.7
    split_names = rng.choice(["train", "test", "valid"], n_pictures, p=[0.8, 0.1, 0.1])
    pictures = [dict(pictures_id=i, filename=f"{i}.jpg", taken_at=t, taken_at_source="filename", width=1280,
                     height=720, file_size=int(rng.integers(80_000, 250_000)), file_mtime=t.timestamp(),
                     cache_index=k, ingested_at=now) for k, (i, t) in enumerate(zip(ids, times))]
    locations = [dict(pictures_id=ids[k], pictures_latitude=float(latitude[k]),
                      pictures_longitude=float(longitude[k]),
                      pictures_location_text=LOCATIONS[int((longitude[k] + 180) // 36) % len(LOCATIONS)],
                      source="history", is_day=6 <= times[k].hour < 18)
                 for k in np.flatnonzero(has_location)]
    splits = [dict(pictures_id=i, split=str(s), seed=42) for i, s in zip(ids, split_names)]
    runs = schema.clustering_runs
    with engine.begin() as conn:
        for table, rows in ((schema.pictures, pictures), (schema.pictures_location, locations),
                            (schema.splits, splits)):
            for begin in range(0, len(rows), 5000):
                upsert(conn, table, rows[begin:begin + 5000])
        key = ((runs.c.clustering_type == clustering_type) & (runs.c.clustering_version == 1)
               & (runs.c.model_type == model_type) & (runs.c.model_name == model_name))
        run_id = conn.execute(select(runs.c.run_id).where(key)).scalar()
        values = dict(params={"n_clusters": n_clusters, "seed": seed, "synthetic": True},
                      metrics={"silhouette": float(np.mean(silhouettes)), "n_pictures": n_pictures},
                      n_clusters=n_clusters, path="", created_at=now)
        if run_id is None:
            run_id = conn.execute(runs.insert().values(clustering_type=clustering_type, clustering_version=1,
                                                       model_type=model_type, model_name=model_name,
                                                       **values)).inserted_primary_key[0]
        else:
            conn.execute(runs.update().where(runs.c.run_id == run_id).values(**values))
        conn.execute(delete(schema.pictures_embedding).where(schema.pictures_embedding.c.run_id == run_id))
        embedding = [dict(run_id=run_id, pictures_id=i, pictures_x=float(x), pictures_y=float(y), label=int(lab),
                          silhouette=float(s)) for i, (x, y), lab, s in zip(ids, xy, labels, silhouettes)]
        for begin in range(0, len(embedding), 5000):
            conn.execute(schema.pictures_embedding.insert(), embedding[begin:begin + 5000])

    latents_path = cfg.path("latents") / model_type / model_name / "latents.npz"
    latents_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(latents_path, ids=np.array(ids), latents=latents)
    return SyntheticRun(run_id=int(run_id), ids=ids, labels=labels, latents_path=latents_path)
