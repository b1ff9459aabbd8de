"""Input pipeline: ``tf.data`` over the ingest cache's decoded pixels, for a split chosen by sampling.

Pictures are decoded once by ingest into :class:`iss.data.cache.ImageCache` (uint8 rows of
``(27, 48, 3)``); training never opens a JPEG. A split's rows are gathered from the cache's
memmap into memory when they fit under ``training.max_in_memory_mb`` (3.9 kB a picture at
48x27: 10,000 pictures are 39 MB), else streamed from the memmap batch by batch.

Each element is ``(pixels, target)``: ``pixels`` uint8 ``(b, h, w, c)`` (the encoder rescales
them itself), ``target`` float32 ``(b, h, w, c)`` = pixels / 255, what the sigmoid decoder
reconstructs. Scaling happens once per batch inside the pipeline, in parallel with training.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from sqlalchemy.engine import Engine

from iss.data.cache import ImageCache
from iss.data.sampling import split_ids

log = logging.getLogger(__name__)


def _with_targets(pixels):
    """``pixels`` uint8 batch -> ``(pixels, pixels / 255 as float32)``."""
    return pixels, tf.cast(pixels, tf.float32) / 255.0


def make_dataset(images: np.ndarray, batch_size: int = 64, shuffle: bool = False, seed: int = 0,
                 rows: np.ndarray | None = None, max_in_memory_bytes: int = 2 << 30) -> tf.data.Dataset:
    """A batched, prefetched dataset of ``(pixels, target)`` pairs.

    Parameters
    ----------
    images : uint8 array or memmap, shape (N, h, w, c)
        The pixels (typically ``ImageCache.inputs``).
    batch_size : int, default=64
    shuffle : bool, default=False
        Reshuffle every epoch, seeded by ``seed`` (the same order sequence on every run).
    seed : int, default=0
    rows : int array, shape (n,), optional
        Rows of ``images`` to use (a split), served in increasing row order unless shuffled;
        default all of them.
    max_in_memory_bytes : int, default=2 GiB
        Above this the rows are streamed from ``images`` (gathered per batch) instead of copied
        into memory once.

    Returns
    -------
    tf.data.Dataset
        Elements ``(uint8 (b, h, w, c), float32 (b, h, w, c))``.
    """
    images_dtype = getattr(images, "dtype", None)
    if images_dtype != np.uint8:
        raise TypeError(f"make_dataset expects uint8 pixels (0..255), got {images_dtype}; the encoder "
                        f"rescales them itself")
    if images.ndim != 4:
        raise ValueError(f"make_dataset expects pixels of shape (n, height, width, channels), got {images.shape}")
    # sorted rows: sequential memmap reads, and the same order whichever path is taken
    rows = np.arange(len(images)) if rows is None else np.sort(np.asarray(rows, dtype=np.int64))
    n = len(rows)
    if n == 0:
        raise ValueError("make_dataset got no pictures")
    nbytes = n * int(np.prod(images.shape[1:]))
    if nbytes <= max_in_memory_bytes:
        data = np.ascontiguousarray(images[rows])
        ds = tf.data.Dataset.from_tensor_slices(data)
        if shuffle:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size)
    else:
        # Too big for memory: shuffle row numbers, gather each batch from the memmap (sorted reads).
        log.info("streaming %d pictures (%.0f MB) from the cache instead of loading them", n, nbytes / 1e6)
        shape = tuple(images.shape[1:])

        def gather(batch_rows):
            return np.asarray(images[np.sort(batch_rows)])

        ds = tf.data.Dataset.from_tensor_slices(rows)
        if shuffle:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size).map(lambda r: tf.ensure_shape(tf.numpy_function(gather, [r], tf.uint8),
                                                                (None, *shape)))
    return ds.map(_with_targets, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def split_rows(cache: ImageCache, ids: Sequence[str], split: str) -> np.ndarray:
    """Cache rows of a split's ids; ids missing from the cache are an error naming the fix."""
    missing = [i for i in ids if i not in cache]
    if missing:
        raise LookupError(
            f"{len(missing)} picture(s) of the {split} split are not in the ingest cache {cache.root} "
            f"(first: {missing[0]!r}); run `make populate_db` then `make sampling` again")
    return cache.index_of(list(ids))


def load_split_datasets(cache: ImageCache, engine: Engine, batch_size: int, seed: int = 0,
                        max_in_memory_bytes: int = 2 << 30, images: np.ndarray | None = None):
    """Training and validation datasets over the cache for the ``train`` and ``valid`` splits.

    ``images`` are the cached pictures to learn from (default ``cache.inputs``; ``cache.thumbs``
    for a model on the thumbnails).

    Returns
    -------
    train_ds : tf.data.Dataset
        Shuffled (seeded) every epoch.
    valid_ds : tf.data.Dataset or None
        ``None`` when the valid split is empty.
    counts : dict
        ``{"train": n_train, "valid": n_valid}``.
    valid_rows : int array
        Cache rows of the valid split (for image summaries).
    """
    train_ids = split_ids(engine, "train")
    if not train_ids:
        raise LookupError("the train split is empty: no rows with split='train' in the splits table; "
                          "run `make sampling` (after `make populate_db`)")
    valid_ids = split_ids(engine, "valid")
    train_rows = split_rows(cache, train_ids, "train")
    valid_rows = split_rows(cache, valid_ids, "valid") if valid_ids else np.zeros(0, dtype=np.int64)
    images = cache.inputs if images is None else images
    train_ds = make_dataset(images, batch_size, shuffle=True, seed=seed, rows=train_rows,
                            max_in_memory_bytes=max_in_memory_bytes)
    # validation order does not matter: bigger batches, no shuffle
    valid_ds = (make_dataset(images, max(batch_size, 256), rows=valid_rows, max_in_memory_bytes=max_in_memory_bytes)
                if len(valid_rows) else None)
    return train_ds, valid_ds, {"train": len(train_rows), "valid": len(valid_rows)}, valid_rows
