"""A small collection for the features tests: an ingest cache of photo-like thumbnails of four kinds,
and the latents of an "autoencoder" that learnt nothing (noise) or one that separates the kinds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from iss.data.cache import ImageCache
from tests.synthetic import synthetic_thumbs

N, K = 240, 4


@dataclass
class Collection:
    cfg: object
    ids: np.ndarray
    kinds: np.ndarray


def write_latents(cfg, ids: np.ndarray, latents: np.ndarray, model_type="simple_conv", model_name="demo"):
    path = cfg.path("latents") / model_type / model_name / "latents.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, ids=ids, latents=latents.astype(np.float32))
    return path


@pytest.fixture
def collection(cfg) -> Collection:
    """``N`` cached pictures of ``K`` kinds (thumbnails 96x54, inputs 48x27), no latents yet."""
    kinds = np.arange(N) % K
    thumbs = synthetic_thumbs(kinds, seed=1)
    inputs = thumbs.reshape(N, 27, 2, 48, 2, 3).mean(axis=(2, 4)).astype(np.uint8)
    ids = np.array([f"20240101-{i:06d}" for i in range(N)])
    ImageCache(cfg.path("cache"), input_size=(48, 27), thumb_size=(96, 54)).append(ids.tolist(), inputs, thumbs)
    fast = {"features": {"auto": {"sample": N, "n_runs": 3, "n_epochs": 100, "n_neighbors": 10}},
            "clustering": {"n2d": {"n_clusters": K, "umap": {"n_neighbors": 10}, "n_epochs": 100, "n_init": 3}}}
    return Collection(cfg.with_overrides(fast), ids, kinds)
