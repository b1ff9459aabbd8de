"""Helpers for the poster tests: a small real collection (40 JPEGs of 640x360 in 4 clusters),
its ``pictures`` rows, a clustering run with labels and silhouettes, the ingest cache's
thumbnails, and small templates (400x300 px) written to a temporary folder."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw, ImageFilter

from iss.db import schema

N_PICTURES = 40
N_CLUSTERS = 4
PICTURE_SIZE = (640, 360)
# a colour no test picture contains, so a slot still showing it was not filled
SLOT_BACKGROUND = "#ff00ff"
CLUSTER_HUES = [(40, 90, 160), (200, 120, 40), (30, 140, 60), (150, 150, 150)]


def picture_id(i: int) -> str:
    return f"pic-{i:02d}"


def make_picture(i: int) -> Image.Image:
    """A deterministic 640x360 picture: a cluster-coloured gradient with shapes and noise.

    Within each cluster, picture 3 is blurred and picture 4 is dark, so "best of cluster"
    has something to rank.
    """
    rng = np.random.default_rng(1000 + i)
    w, h = PICTURE_SIZE
    base = np.array(CLUSTER_HUES[i // (N_PICTURES // N_CLUSTERS)], dtype=np.float32)
    ramp = np.linspace(0.6, 1.3, w, dtype=np.float32)[None, :, None]
    pixels = np.clip(base[None, None, :] * ramp + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        size = int(rng.integers(15, 90))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        colour = (colour[0], max(colour[1], 80), colour[2])  # never near the slot background magenta
        draw.ellipse((x, y, x + size, y + size), fill=colour, outline=(255, 255, 255))
    draw.text((10, 10), picture_id(i), fill=(255, 255, 255))
    if i % 10 == 3:
        image = image.filter(ImageFilter.GaussianBlur(6))
    if i % 10 == 4:
        image = Image.fromarray((np.asarray(image) * 0.15).astype(np.uint8))
    return image


def make_flat_picture(k: int) -> Image.Image:
    """A blank blue screen with faint noise, like a "live is off" frame."""
    rng = np.random.default_rng(2000 + k)
    pixels = np.clip(np.array([50, 60, 190]) + rng.normal(0, 2, (PICTURE_SIZE[1], PICTURE_SIZE[0], 3)), 0, 255)
    return Image.fromarray(pixels.astype(np.uint8))


@dataclass
class Collection:
    folder: Path
    cache: Path
    ids: list[str]
    flat_ids: list[str]


def silhouette_of(i: int) -> float:
    """Silhouettes: within each cluster, pictures 0..4 score highest (0.9 .. 0.5), then 0.3 .. 0.06."""
    k = i % 10
    return round(0.9 - 0.1 * k, 3) if k < 5 else round(0.3 - 0.04 * (k - 5), 3)


def insert_collection(engine, collection: Collection, model_name: str = "test", version: int = 1,
                      created_at: dt.datetime | None = None, with_flat: bool = False) -> int:
    """``pictures`` rows, one clustering run and its ``pictures_embedding`` rows; returns the run id.

    Clusters 0..3 hold 10 pictures each; ``with_flat`` adds cluster 4, the 10 flat pictures."""
    ids = collection.ids + (collection.flat_ids if with_flat else [])
    now = dt.datetime(2024, 1, 1, 12, 0, 0)
    with engine.begin() as conn:
        existing = {r[0] for r in conn.execute(schema.pictures.select().with_only_columns(schema.pictures.c.pictures_id))}
        rows = []
        for pid in ids:
            if pid in existing:
                continue
            path = collection.folder / f"{pid}.jpg"
            rows.append({"pictures_id": pid, "filename": path.name, "taken_at": None, "taken_at_source": None,
                         "width": PICTURE_SIZE[0], "height": PICTURE_SIZE[1], "file_size": path.stat().st_size,
                         "file_mtime": path.stat().st_mtime, "cache_index": ids.index(pid),
                         "ingested_at": now})
        if rows:
            conn.execute(schema.pictures.insert(), rows)
        result = conn.execute(schema.clustering_runs.insert().values(
            clustering_type="n2d", clustering_version=version, model_type="simple_conv", model_name=model_name,
            params={}, metrics={}, n_clusters=N_CLUSTERS, path=None, created_at=created_at or now))
        run_id = int(result.inserted_primary_key[0])
        rng = np.random.default_rng(7)
        conn.execute(schema.pictures_embedding.insert(), [
            {"run_id": run_id, "pictures_id": pid, "pictures_x": float(rng.normal()), "pictures_y": float(rng.normal()),
             "label": i // (N_PICTURES // N_CLUSTERS), "silhouette": silhouette_of(i) if i < N_PICTURES else 0.95}
            for i, pid in enumerate(ids)])
    return run_id


def small_template(**changes) -> dict:
    """A 400x300 px template on a 100 px grid with every kind of rule (9 slots)."""
    def slot(origin, size, position, rule):
        return {"origin": origin, "size": size, "background": SLOT_BACKGROUND, "position": position, "rule": rule}

    template = {
        "description": "test template",
        "canvas": {"width_px": 400, "height_px": 300, "dpi": 50},
        "unit": [100, 100],
        "border": {"size_px": 6, "colour": "#101010"},
        "slots": [
            slot([0, 0], [2, 2], "hero", {"kind": "best_of_cluster", "clusters": [0]}),
            slot([2, 0], [1, 1], "A", {"kind": "clusters", "clusters": [1]}),
            slot([3, 0], [1, 1], "B", {"kind": "clusters", "clusters": [1]}),
            slot([2, 1], [1, 1], "C", {"kind": "pictures", "ids": ["pic-20", "pic-21"]}),
            slot([3, 1], [1, 1], "D", {"kind": "clusters", "clusters": "auto"}),
            slot([0, 2], [1, 1], "E", {"kind": "clusters", "clusters": [2, 3]}),
            slot([1, 2], [1, 1], "F", {"kind": "clusters", "clusters": [2, 3]}),
            slot([2, 2], [1, 1], "G", {"kind": "clusters", "clusters": "auto"}),
            slot([3, 2], [1, 1], "H", {"kind": "best_of_cluster", "clusters": "auto:0"}),
        ],
    }
    template.update(changes)
    return template


@dataclass
class PosterEnv:
    cfg: object
    engine: object
    run_id: int
    collection: Collection
    templates: Path

    def write_template(self, name: str, content: dict) -> Path:
        path = self.templates / f"{name}.yaml"
        path.write_text(yaml.safe_dump(content, sort_keys=False))
        return path


