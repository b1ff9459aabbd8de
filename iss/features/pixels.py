"""Pixel features: the ingest cache's pictures themselves, standardised, optionally reduced by PCA.

On a few hundred real ISS frames, UMAP on the 48x27 or 96x54 thumbnails' own pixels found the
kinds of pictures on every seed (ARI 1.00) where the autoencoder trained on those frames
reached 0.55-0.78 (issue 13): with little to learn from, the pictures are the better
representation. This module turns cached pictures into such feature vectors, in batches, so
memory stays bounded by the batch size and the PCA sample, not by the collection.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from iss.data.cache import ImageCache

PIXEL_SIZES = ("input", "thumb")
# Per-pixel standard deviations are floored at this (pixel values in [0, 1]): a pixel that is
# black in every frame (space above the limb) would otherwise have its JPEG noise blown up to
# unit variance and drown the pixels that tell pictures apart.
STD_FLOOR = 0.05


def cached_pixels(cache: ImageCache, size: str) -> np.ndarray:
    """The cache's uint8 pictures at ``size`` ("input": model input, "thumb": thumbnail), (n, h, w, 3) memmap."""
    if size not in PIXEL_SIZES:
        raise ValueError(f"features.pixels.size={size!r}: expected one of {', '.join(map(repr, PIXEL_SIZES))}")
    return cache.inputs if size == "input" else cache.thumbs


def pixel_features(images: np.ndarray, pca_components: int | None = 50, standardise: bool = True,
                   pca_sample: int = 5000, batch_size: int = 2048, random_state: int = 0) -> tuple[np.ndarray, dict]:
    """Feature vectors of pictures from their pixels.

    Parameters
    ----------
    images : uint8 array, shape (n, h, w, c)
        Pictures (a memmap is read in batches).
    pca_components : int or None, default=50
        Keep this many principal components (fitted on ``pca_sample`` pictures); None keeps
        every pixel.
    standardise : bool, default=True
        Centre every pixel value on its collection mean and divide by its standard
        deviation, floored at ``STD_FLOOR`` (see there).
    pca_sample : int, default=5000
        Pictures the mean, deviations and PCA are fitted on (all when fewer).
    batch_size : int, default=2048
        Pictures converted at a time.
    random_state : int, default=0
        Seeds the sample and the randomized PCA.

    Returns
    -------
    features : float32 array, shape (n, pca_components or h*w*c)
    record : dict
        What was done: ``dim``, ``standardise``, ``pca_components``, ``explained_variance``.

    Raises
    ------
    ValueError
        Empty ``images`` or a bad ``pca_components``.
    """
    n = len(images)
    if n == 0:
        raise ValueError("no pictures to turn into pixel features; run `make populate_db` first")
    d = int(np.prod(images.shape[1:]))
    rng = np.random.default_rng(random_state)
    sample_rows = np.sort(rng.choice(n, size=min(n, pca_sample), replace=False))
    sample = _as_float(images[sample_rows])
    mean = sample.mean(axis=0) if standardise else np.zeros(d, np.float32)
    scale = np.maximum(sample.std(axis=0), STD_FLOOR) if standardise else np.ones(d, np.float32)
    record = {"standardise": bool(standardise), "pca_components": pca_components, "input_dim": d}
    pca = None
    if pca_components is not None:
        if isinstance(pca_components, bool) or not isinstance(pca_components, (int, np.integer)) or pca_components < 1:
            raise ValueError(f"features.pixels.pca_components={pca_components!r}: expected a positive int or null")
        k = int(min(pca_components, len(sample_rows), d))
        pca = PCA(n_components=k, svd_solver="randomized", random_state=random_state).fit((sample - mean) / scale)
        record["explained_variance"] = round(float(pca.explained_variance_ratio_.sum()), 4)
    out = np.empty((n, pca.n_components_ if pca is not None else d), dtype=np.float32)
    for start in range(0, n, batch_size):
        block = (_as_float(images[start:start + batch_size]) - mean) / scale
        out[start:start + len(block)] = pca.transform(block) if pca is not None else block
    record["dim"] = int(out.shape[1])
    return out, record


def _as_float(images: np.ndarray) -> np.ndarray:
    """uint8 (b, h, w, c) -> float32 (b, h*w*c) in [0, 1]."""
    images = np.asarray(images)
    return images.reshape(len(images), -1).astype(np.float32) * np.float32(1 / 255)


def pixel_feature_set(cfg, model_type: str | None = None, model_name: str | None = None):
    """Pixel features of every picture of the ingest cache (``features.pixels`` settings).

    ``model_type`` / ``model_name`` are ignored (the feature kinds' builders share one signature).

    Returns
    -------
    FeatureSet
        ``kind="pixels"``, registry identity ``("pixels", "pixels-<size><w>x<h>")``.
    """
    from iss.features.store import FeatureSet

    settings = pixel_settings(cfg)
    cache = ImageCache(cfg.path("cache"))
    values, record = pixel_features(cached_pixels(cache, settings["size"]), settings["pca_components"],
                                    bool(settings["standardise"]), int(settings["pca_sample"]),
                                    random_state=int(settings["random_state"]))
    w, h = cache.input_size if settings["size"] == "input" else cache.thumb_size
    return FeatureSet(np.array(cache.ids), values, "pixels", "pixels", pixel_set_name(cfg, settings),
                      {"source": f"ingest cache {settings['size']} pictures {w}x{h}", **record})


def pixel_settings(cfg, settings: dict | None = None) -> dict:
    """``features.pixels`` with its defaults filled in; unknown keys raise a ``ValueError`` naming them."""
    from iss.config_schema import PixelFeatures  # the keys and their defaults

    given = settings if settings is not None else cfg.get("features.pixels")
    unknown = sorted(set(given) - set(PixelFeatures.model_fields))
    if unknown:
        raise ValueError(f"features.pixels: unknown key(s) {', '.join(unknown)}; expected some of "
                         f"{', '.join(sorted(PixelFeatures.model_fields))}")
    return {**PixelFeatures().model_dump(), **given}


def pixel_set_name(cfg, settings: dict | None = None) -> str:
    """``pixels-<size><w>x<h>``: the pixel features' name and registry identity (e.g. ``pixels-thumb96x54``)."""
    settings = pixel_settings(cfg, settings)
    size = cfg.get("ingest.input_size" if settings["size"] == "input" else "ingest.thumb_size")
    return f"pixels-{settings['size']}{int(size[0])}x{int(size[1])}"

