"""Encode step: latents of every picture of the ingest cache with a trained encoder.

Reads
    ``models/<model_type>/<model_name>/encoder.keras`` and the ingest cache ``cfg.path("cache")``.
Writes
    ``cfg.path("latents") / <model_type> / <model_name> / latents.npz`` with ``ids`` (str, (n,),
    in cache order) and ``latents`` (float32, (n, d): flattened conv latents; ``z_mean`` for
    VAEs), plus ``encoder_sha256`` (which encoder made them). With ``only_new`` the pictures
    already encoded by the same encoder are kept and only the others are encoded and merged;
    a retrained encoder re-encodes everything. With an engine, the ``models`` row's metrics
    get ``n_latents`` and ``latents_path``.

Speed: one traced ``tf.function`` over large uint8 batches (no per-batch retracing, no
``predict`` machinery), so encoding costs about what the encoder's arithmetic costs.

Where: ``compute.scheduler`` (:mod:`iss.compute`). ``auto`` encodes here, in this process (a
LocalCluster never pays back its start-up on one machine); ``local``, ``synchronous`` or a
scheduler address encode as Dask tasks over partitions of the pictures to encode
(:func:`encode_partition`): each worker loads the encoder once, reads its partition's rows of the
ingest cache and writes their latents as one chunk of a Zarr store (``compute.store``); this
process then assembles ``latents.npz`` exactly as the in-process path does. The workers must see
the model folder and the ingest cache under the same paths as this machine (a shared folder).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from sqlalchemy import select
from sqlalchemy.engine import Engine

import keras
from iss.compute import ComputeSettings, open_compute, partition_size_for, process_cached, step_store_url
from iss.config import Config
from iss.data.cache import ImageCache, read_rows
from iss.db import schema
from iss.models import autoencoders  # noqa: F401 - registers the custom layers needed to load encoders
from iss.models.store import (LATENTS_FILE, EncodeError, file_sha256, latents_encoder_sha, latents_path,  # noqa: F401
                              load_latents, read_latents, write_latents)
from iss.models.training import ENCODER_FILE, available_models, model_dir

log = logging.getLogger(__name__)


def load_encoder(cfg: Config, model_type: str, model_name: str | None = None) -> keras.Model:
    """The trained encoder ``models/<model_type>/<model_name>/encoder.keras``.

    ``model_name`` defaults to ``training.model_name``. Raises :class:`EncodeError` naming the
    saved models of that type when there is no such encoder.
    """
    model_name = model_name or str(cfg.get("training.model_name"))
    path = model_dir(cfg, model_type, model_name) / ENCODER_FILE
    if not path.is_file():
        names = available_models(cfg, model_type)
        raise EncodeError(f"no trained encoder at {path}; saved {model_type} models: {', '.join(names) or 'none'} "
                          f"(train one with `make training MODEL_TYPE={model_type}`)")
    return keras.models.load_model(path)


def latent_dim(encoder: keras.Model) -> int:
    """Size ``d`` of a flattened latent (``z_mean`` for a VAE encoder)."""
    return int(np.prod(encoder.outputs[0].shape[1:]))


def _encode_function(encoder: keras.Model, input_shape):
    """A traced uint8 (b, h, w, c) -> float32 (b, d) function, one per encoder (one trace for all batch sizes).

    XLA (``jit_compile=True``) was measured 2-3x slower than this plain graph on a 2-core CPU.
    """
    functions = encoder.__dict__.get("_iss_encode_functions")
    if functions is None:
        functions = {}
        # plain attribute, outside Keras's tracking: not saved, collected with the encoder
        object.__setattr__(encoder, "_iss_encode_functions", functions)
    key = tuple(input_shape)
    if key in functions:
        return functions[key]
    d = latent_dim(encoder)

    @tf.function(input_signature=[tf.TensorSpec((None, *input_shape), tf.uint8)], reduce_retracing=True,
                 autograph=False)
    def encode(pixels):
        outputs = encoder(tf.cast(pixels, tf.float32), training=False)
        first = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
        return tf.reshape(tf.cast(first, tf.float32), (-1, d))

    functions[key] = encode
    return encode


# Why ~330k pixels a batch (256 pictures of 48x27, 64 of 96x54): a convolutional encoder runs
# fastest on this CPU when a batch's feature maps stay in cache. Measured on 2026-12-07 (one
# thread, 4,096 pictures, best of 2): simple_conv 8,503 -> 10,879 pictures/s at 48x27 (1,024 -> 256
# a batch) and 1,751 -> 2,642 at 96x54 (1,024 -> 64); variational_conv +28 % / +69 %; the dense
# ``simple`` encoder -8 % at 48x27, +31 % at 96x54.
BATCH_PIXELS = 256 * 48 * 27


def batch_size_for(input_shape) -> int:
    """Pictures per encoder call for pictures of ``input_shape`` ``(h, w, c)``: a power of two near
    :data:`BATCH_PIXELS` / (h * w), from 16 to 1,024."""
    h, w = int(input_shape[0]), int(input_shape[1])
    return int(np.clip(2 ** round(np.log2(BATCH_PIXELS / (h * w))), 16, 1024))


def encode_images(encoder: keras.Model, images: np.ndarray, batch_size: int | None = None) -> np.ndarray:
    """Latents of pictures.

    Parameters
    ----------
    encoder : keras.Model
        A trained encoder (pixels 0..255 in).
    images : uint8 array, shape (n, h, w, c)
        Raw pixels (a cache memmap is fine: it is read batch by batch).
    batch_size : int, optional
        Pictures per encoder call; default :func:`batch_size_for` the encoder's input.

    Returns
    -------
    float32 array, shape (n, d)
        Flattened latents; for a VAE encoder, ``z_mean``.
    """
    images = np.asarray(images) if not isinstance(images, np.memmap) else images
    if images.dtype != np.uint8:
        raise TypeError(f"encode_images expects uint8 pixels (0..255), got {images.dtype}")
    expected = tuple(int(s) for s in encoder.inputs[0].shape[1:])
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise ValueError(f"encode_images: the encoder takes pictures of {expected}, got an array of {images.shape}")
    n, d = len(images), latent_dim(encoder)
    batch_size = batch_size or batch_size_for(expected)
    out = np.empty((n, d), dtype=np.float32)
    encode = _encode_function(encoder, expected)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        out[start:stop] = encode(tf.constant(np.ascontiguousarray(images[start:stop]))).numpy()
    return out


def encode_collection(cfg: Config, engine: Engine | None, model_type: str, model_name: str | None = None,
                      only_new: bool = True, batch_size: int | None = None) -> Path:
    """Encode the pictures of the ingest cache and write ``latents.npz``.

    Parameters
    ----------
    cfg : Config
    engine : Engine or None
        When given, the ``models`` row of the model records ``n_latents`` and ``latents_path``.
    model_type : str
    model_name : str, optional
        Default ``training.model_name``.
    only_new : bool, default=True
        Keep the latents already computed by this same encoder and encode only the other
        pictures; False re-encodes everything.
    batch_size : int, optional
        Pictures per encoder call; default :func:`batch_size_for` the encoder's input.

    Returns
    -------
    Path
        The ``latents.npz`` written.

    Raises
    ------
    ComputeError
        On Dask: the scheduler does not answer, or the workers cannot reach the encoder, the
        ingest cache or ``compute.store`` (:mod:`iss.compute`; the message says which).
    """
    model_name = model_name or str(cfg.get("training.model_name"))
    encoder_file = model_dir(cfg, model_type, model_name) / ENCODER_FILE
    encoder = load_encoder(cfg, model_type, model_name)
    encoder_sha = file_sha256(encoder_file)
    cache = ImageCache(cfg.path("cache"))
    path = latents_path(cfg, model_type, model_name)
    ids = np.array(cache.ids, dtype=str)
    d = latent_dim(encoder)

    old_ids, old_latents = np.zeros(0, dtype=str), np.zeros((0, d), dtype=np.float32)
    if only_new and path.is_file():
        if latents_encoder_sha(path) != encoder_sha:
            log.info("%s was made by another encoder: re-encoding every picture", path)
        else:
            try:
                old_ids, old_latents = read_latents(cfg, model_type, model_name)
            except ValueError as exc:  # a damaged file is re-made, not merged
                log.warning("%s; re-encoding every picture", exc)
            if old_latents.shape[1] != d:
                old_ids, old_latents = np.zeros(0, dtype=str), np.zeros((0, d), dtype=np.float32)
    known = np.isin(ids, old_ids)
    todo = np.flatnonzero(~known)
    log.info("encoding %d of %d pictures with %s/%s (latent dim %d)", len(todo), len(ids), model_type,
             model_name, d)
    started = time.perf_counter()
    shape = tuple(int(v) for v in encoder.inputs[0].shape[1:])
    compute = ComputeSettings.from_config(cfg)
    scheduler = compute.resolve(len(todo))  # auto: here, on a local collection (see the module docstring)
    if len(todo) and scheduler != "inprocess":
        new_latents = _encode_on_dask(cfg, compute, scheduler, encoder_file, cache, shape, todo, d, batch_size)
    elif len(todo):
        new_latents = encode_images(encoder, _rows(cache, todo, shape), batch_size=batch_size)
    else:
        new_latents = np.zeros((0, d), dtype=np.float32)
    seconds = time.perf_counter() - started
    if len(todo):
        log.info("encoded %d pictures in %.2f s (%.0f pictures/s)", len(todo), seconds, len(todo) / max(seconds, 1e-9))

    # merge, in cache order: old latents looked up by id, new ones in place
    latents = np.empty((len(ids), d), dtype=np.float32)
    if known.any():
        order = {pid: i for i, pid in enumerate(old_ids)}
        latents[known] = old_latents[[order[pid] for pid in ids[known]]]
    latents[todo] = new_latents
    write_latents(path, ids, latents, encoder_sha)
    log.info("wrote %s: %d latents of dimension %d", path, len(ids), d)
    if engine is not None:
        _record_latents(engine, model_type, model_name, path, len(ids))
    return path


def cached_encoder(path: str | Path) -> keras.Model:
    """The encoder saved at ``path``, loaded once per process (per Dask worker) and kept while the file's
    mtime is the same: a retrained encoder is loaded again."""
    path = str(path)
    return process_cached("encoder", (path, os.stat(path).st_mtime_ns), lambda: keras.models.load_model(path))


def encode_partition(encoder_path: str, pictures_path: str, n_pictures: int, shape: tuple, rows: np.ndarray,
                     store_url: str, partition: int, partition_size: int, batch_size: int | None) -> int:
    """A Dask task: encode the cache rows ``rows`` and write their latents as chunk ``partition`` of the store.

    Parameters
    ----------
    encoder_path : str
        The ``encoder.keras`` file, as this worker sees it.
    pictures_path : str
        The ingest cache's file of ``n_pictures`` rows of ``shape`` (:meth:`ImageCache.pictures_file`).
    n_pictures : int
    shape : tuple of int
        The encoder's input shape ``(h, w, 3)``.
    rows : ndarray of int
        The cache rows of this partition (at most ``partition_size``): only they are read, so a
        worker holds one partition of pixels at a time.
    store_url : str
        The :class:`~iss.data.partition_store.PartitionStore` of the run (array ``latents``).
    partition, partition_size : int
    batch_size : int or None

    Returns
    -------
    int
        Latents written (``len(rows)``). Idempotent: a retried task writes the same chunk again.
    """
    from iss.data.partition_store import PartitionStore

    latents = encode_images(cached_encoder(encoder_path), read_rows(pictures_path, n_pictures, shape, rows),
                            batch_size=batch_size)
    PartitionStore(store_url, partition_size).write(partition, latents=latents)
    return len(rows)


def _encode_on_dask(cfg: Config, compute: ComputeSettings, scheduler: str, encoder_file: Path, cache: ImageCache,
                    shape: tuple, todo: np.ndarray, d: int, batch_size: int | None) -> np.ndarray:
    """Latents of the cache rows ``todo`` (in that order), encoded as Dask tasks (:func:`encode_partition`).

    Each task writes one chunk of a Zarr store; the chunks are read back by partition into one
    array, so the result does not depend on which worker ran what, or how often. The store is
    removed at the end.
    """
    from iss.data.partition_store import PartitionStore

    store_url = step_store_url(cfg, compute.store, "encode")
    latents = np.empty((len(todo), d), dtype=np.float32)
    with open_compute(compute, scheduler) as session:
        row_bytes = int(np.prod(shape)) + 4 * d  # the pixels read, the latents written
        size = partition_size_for(len(todo), session.workers, compute.partition_size, row_bytes)
        partitions = [todo[start:start + size] for start in range(0, len(todo), size)]
        store = PartitionStore.create(store_url, len(partitions), size, {"latents": ((d,), "float32")})
        log.info("encode: %d pictures in %d partitions of %d on %s (workers: %d), latents through %s", len(todo),
                 len(partitions), size, session.kind, session.workers, store_url)
        tasks = [(str(encoder_file), str(cache.pictures_file(shape)), len(cache), shape, rows, store_url, p, size,
                  batch_size) for p, rows in enumerate(partitions)]
        for p, n in session.map_unordered(encode_partition, tasks, key="encode"):
            latents[p * size:p * size + n] = store.read(p, n, "latents")[0]
    store.remove()
    return latents


def _rows(cache: ImageCache, rows: np.ndarray, shape) -> np.ndarray:
    """Cache rows of the encoder's input ``shape`` (inputs or thumbnails) as a uint8 array; a plain slice of
    the memmap when they are all the rows."""
    inputs = cache.pictures(shape)
    if len(rows) == len(inputs):
        return inputs
    return np.asarray(inputs[rows])


def _record_latents(engine: Engine, model_type: str, model_name: str, path: Path, n: int) -> None:
    table = schema.models
    where = (table.c.model_type == model_type) & (table.c.model_name == model_name)
    with engine.begin() as conn:
        row = conn.execute(select(table.c.model_id, table.c.metrics).where(where)).first()
        if row is None:
            log.warning("model %s/%s is not in the models table; latents not recorded there", model_type, model_name)
            return
        metrics = dict(row.metrics or {})
        metrics.update({"n_latents": int(n), "latents_path": str(path)})
        conn.execute(table.update().where(table.c.model_id == row.model_id).values(metrics=metrics))
