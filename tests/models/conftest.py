"""Small real fixtures for the model tests: structured pictures, a tiny ingest cache and its splits."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import insert

from iss.data.cache import ImageCache
from iss.db import schema
from iss.db.engine import get_engine

N_PICTURES = 64
N_TRAIN = 48


def structured_pictures(n: int, shape=(27, 48, 3), seed: int = 0) -> np.ndarray:
    """``n`` uint8 pictures of four learnable kinds (horizon, flat screen, stripes, blob) with noise."""
    rng = np.random.default_rng(seed)
    h, w, c = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((n, h, w, c), dtype=np.float32)
    for i in range(n):
        kind = i % 4
        colour = rng.uniform(0.2, 1.0, size=c)
        if kind == 0:  # dark sky over a bright curved limb
            limb = h * rng.uniform(0.3, 0.7) + 0.004 * (xx - w / 2) ** 2
            img = (yy > limb)[..., None] * colour
        elif kind == 1:  # uniform screen
            img = np.ones((h, w, 1)) * colour * rng.uniform(0.1, 0.6)
        elif kind == 2:  # vertical stripes
            img = (0.5 + 0.5 * np.sin(xx / rng.uniform(2, 5)))[..., None] * colour
        else:  # a bright blob
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            img = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (h / 5) ** 2))[..., None] * colour
        out[i] = img
    out += rng.normal(0, 0.03, size=out.shape)
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


def picture_ids(n: int, start: int = 0) -> list[str]:
    return [f"20200101-{i:06d}" for i in range(start, start + n)]


def fill_cache(cfg, n: int, start: int = 0, seed: int = 0) -> ImageCache:
    """Append ``n`` structured pictures to the cache of ``cfg`` (created at 48x27 / 96x54)."""
    cache = ImageCache(cfg.path("cache"), input_size=(48, 27), thumb_size=(96, 54))
    inputs = structured_pictures(n, seed=seed)
    thumbs = np.repeat(np.repeat(inputs, 2, axis=1), 2, axis=2)
    cache.append(picture_ids(n, start), inputs, thumbs)
    return cache


def write_splits(engine, ids: list[str], n_train: int) -> None:
    rows = [{"pictures_id": pid, "split": "train" if i < n_train else "valid", "seed": 0} for i, pid in enumerate(ids)]
    with engine.begin() as conn:
        conn.execute(schema.splits.delete())
        conn.execute(insert(schema.splits), rows)


@pytest.fixture
def train_cfg(cfg):
    """The ``cfg`` fixture with tiny training settings."""
    return cfg.with_overrides({"training": {"epochs": 2, "batch_size": 16, "checkpoint_every": 1,
                                            "early_stopping_patience": 5, "image_every": 1}})


@pytest.fixture
def collection(train_cfg):
    """A cache of 64 structured pictures split 48 train / 16 valid in the SQLite database of ``cfg``."""
    cache = fill_cache(train_cfg, N_PICTURES)
    engine = get_engine(train_cfg.database_url)
    write_splits(engine, cache.ids, N_TRAIN)
    yield train_cfg, engine, cache
    engine.dispose()


@pytest.fixture
def trained(collection):
    """:func:`collection` with a ``simple_conv`` model ``enc`` trained one epoch on it."""
    from iss.models.training import train_model

    cfg, engine, cache = collection
    train_model(cfg, engine, "simple_conv", "enc", epochs=1, verbose=0)
    return cfg, engine, cache
