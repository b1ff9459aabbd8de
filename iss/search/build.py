"""Building, saving and updating the search index of a trained model.

Reads
    ``latents.npz`` of the model (the encode step), its ``encoder.keras`` / ``decoder.keras``,
    the ingest cache (model inputs for reconstruction errors, thumbnails for near-copy
    calibration) and a sample of the original pictures in ``cfg.path("collections")`` (texture).
Writes
    ``cfg.path("processed") / "search" / <model_type> / <model_name> /``: ``index.npz`` +
    ``index.json`` (:class:`~iss.search.index.SimilarityIndex`) and ``novelty.npz`` +
    ``novelty.json`` (:class:`~iss.search.novelty.NoveltyCalibration`).

The index is built once and then kept in step with ``latents.npz``: new pictures are added
incrementally (exact, see :meth:`SimilarityIndex.add`); a different encoder, removed pictures
or changed latents trigger a rebuild.
"""

from __future__ import annotations

import io
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from iss.config import Config
from iss.data.cache import ImageCache
from iss.search.index import SearchIndexError, SimilarityIndex
from iss.search.novelty import NoveltyCalibration, jpeg_bytes, texture_score

log = logging.getLogger(__name__)

SEARCH_DEFAULTS = {
    "threshold_percentile": 99.0,
    "margin": 1.5,
    "n_stored": 10,
    "texture_sample": 500,
    "texture_size": [320, 180],
    "near_copy_sample": 200,
    "seed": 0,
}


def search_settings(cfg: Config) -> dict:
    """The ``search`` config section over :data:`SEARCH_DEFAULTS` (every key optional)."""
    section = cfg.get("search", None) or {}
    return {**SEARCH_DEFAULTS, **section}


def model_names(cfg: Config, model_type: str | None = None, model_name: str | None = None) -> tuple[str, str]:
    """``(model_type, model_name)`` with the ``training`` section's defaults."""
    return (str(model_type or cfg.get("training.model_type")), str(model_name or cfg.get("training.model_name")))


def index_dir(cfg: Config, model_type: str, model_name: str) -> Path:
    """``cfg.path("processed") / "search" / model_type / model_name``."""
    return cfg.path("processed") / "search" / model_type / model_name


# --------------------------------------------------------------------------------------------
# The model pieces search needs
# --------------------------------------------------------------------------------------------

@dataclass
class SearchModel:
    """A trained encoder (and its decoder, when saved) for encoding queries.

    Attributes
    ----------
    encoder : keras.Model
        uint8 pixels (n, h, w, c) -> latent.
    decoder : keras.Model or None
        Latent -> pixels in [0, 1]; None turns the reconstruction check off.
    model_type, model_name : str
    """

    encoder: object
    decoder: object
    model_type: str
    model_name: str

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.encoder.inputs[0].shape[1:])

    def encode(self, images: np.ndarray) -> np.ndarray:
        """Latents of uint8 pictures (n, h, w, c) -> float32 (n, d), exactly as the encode step makes them."""
        from iss.models.encode import encode_images

        return encode_images(self.encoder, np.asarray(images, dtype=np.uint8), batch_size=1024)

    def _decode_function(self):
        fn = self.__dict__.get("_decode_fn")
        if fn is None:
            import tensorflow as tf

            latent_shape = tuple(int(s) for s in self.decoder.inputs[0].shape[1:])
            decoder = self.decoder

            @tf.function(reduce_retracing=True, autograph=False)
            def errors(latents, pixels):
                out = decoder(tf.reshape(latents, (-1, *latent_shape)), training=False)
                target = tf.cast(pixels, tf.float32) / 255.0
                return tf.reduce_mean(tf.square(tf.cast(out, tf.float32) - target), axis=[1, 2, 3])

            fn = errors
            self.__dict__["_decode_fn"] = fn
        return fn

    def reconstruction_errors(self, images: np.ndarray, latents: np.ndarray | None = None,
                              batch_size: int = 1024) -> np.ndarray | None:
        """Per-picture MSE between pixels/255 and the decoder's reconstruction, float32 (n,); None without decoder."""
        if self.decoder is None:
            return None
        import tensorflow as tf

        images = np.asarray(images, dtype=np.uint8) if not isinstance(images, np.memmap) else images
        if latents is None:
            latents = self.encode(images)
        fn = self._decode_function()
        out = np.empty(len(images), np.float32)
        for start in range(0, len(images), batch_size):
            stop = min(start + batch_size, len(images))
            out[start:stop] = fn(tf.constant(latents[start:stop]),
                                 tf.constant(np.ascontiguousarray(images[start:stop]))).numpy()
        return out


def load_search_model(cfg: Config, model_type: str | None = None, model_name: str | None = None) -> SearchModel:
    """The trained encoder (``iss.models.encode.load_encoder``) and, when saved, its decoder."""
    import keras

    from iss.models.encode import load_encoder
    from iss.models.training import DECODER_FILE, model_dir

    model_type, model_name = model_names(cfg, model_type, model_name)
    encoder = load_encoder(cfg, model_type, model_name)
    decoder_path = model_dir(cfg, model_type, model_name) / DECODER_FILE
    decoder = keras.models.load_model(decoder_path) if decoder_path.is_file() else None
    if decoder is None:
        log.warning("no decoder at %s: the reconstruction check of the search is off", decoder_path)
    return SearchModel(encoder, decoder, model_type, model_name)


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------

def _original_paths(cfg: Config, ids: np.ndarray) -> dict[str, Path]:
    """Original picture files of ``ids`` found in ``cfg.path("collections")`` (by file stem)."""
    folder = cfg.path("collections")
    if not folder.is_dir():
        return {}
    wanted = set(ids.tolist())
    found = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            stem = entry.name.rsplit(".", 1)[0]
            if stem in wanted and entry.is_file():
                found[stem] = Path(entry.path)
    return found


def texture_sample(cfg: Config, ids: np.ndarray, n: int, size, seed: int = 0) -> np.ndarray:
    """:func:`texture_score` of up to ``n`` originals (seeded sample); empty when none are readable."""
    paths = _original_paths(cfg, ids)
    if not paths:
        log.warning("no original pictures of the index in %s: the texture check of the search is off",
                    cfg.path("collections"))
        return np.zeros(0, np.float32)
    names = sorted(paths)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(names), size=min(n, len(names)), replace=False)
    scores = []
    for i in sorted(chosen):
        try:
            scores.append(texture_score(paths[names[i]], tuple(size)))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:  # a vanished or broken file
            log.warning("texture calibration skips %s: %s", paths[names[i]], exc)
    return np.asarray(scores, np.float32)


def edited_copy(thumb: np.ndarray, rng: np.random.Generator) -> io.BytesIO:
    """A slightly edited copy of a thumbnail, as JPEG bytes: brightness +-10%, 2-5% crop, JPEG quality 50-90."""
    image = Image.fromarray(thumb)
    width, height = image.size
    crop = rng.uniform(0.02, 0.05)
    dx, dy = int(round(width * crop)), int(round(height * crop))
    left, top = int(rng.integers(0, dx + 1)), int(rng.integers(0, dy + 1))
    image = image.crop((left, top, width - dx + left, height - dy + top))
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.9, 1.1))
    return jpeg_bytes(np.asarray(image), quality=int(rng.integers(50, 91)))


def near_copy_distances(model: SearchModel, cache: ImageCache, ids: np.ndarray, latents: np.ndarray, n: int,
                        input_size, thumb_size, seed: int = 0) -> np.ndarray:
    """Latent distances between edited copies of ``n`` collection thumbnails and their pictures.

    The copies go through :func:`iss.data.images.decode_picture`, the query path, so the
    distances are what an edited copy uploaded to the search would see.
    """
    from iss.data.images import decode_picture

    cached = np.array([pid in cache for pid in ids])
    rows = np.flatnonzero(cached)
    if len(rows) == 0:
        return np.zeros(0, np.float32)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(rows, size=min(n, len(rows)), replace=False))
    thumbs = cache.get_thumbs(ids[rows].tolist())
    size = cache.size_for(model.input_shape)  # the encoder takes the model inputs or the thumbnails
    inputs = np.stack([getattr(decode_picture(edited_copy(t, rng), input_size, thumb_size), size) for t in thumbs])
    copies = model.encode(inputs)
    return np.sqrt(((copies - latents[rows]) ** 2).sum(axis=1)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Build / update
# --------------------------------------------------------------------------------------------

@dataclass
class SyncSummary:
    """What :func:`sync_index` did: ``action`` is loaded | added | built."""

    action: str
    n_index: int
    n_added: int
    seconds: float
    folder: Path
    reason: str = ""


def _latents_file_state(path: Path) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _read_latents(cfg: Config, model_type: str, model_name: str) -> tuple[np.ndarray, np.ndarray, str, Path]:
    from iss.models.encode import latents_path, load_latents

    path = latents_path(cfg, model_type, model_name)
    ids, latents = load_latents(cfg, model_type, model_name)
    with np.load(path, allow_pickle=False) as data:
        sha = str(data["encoder_sha256"]) if "encoder_sha256" in data else ""
    return np.asarray(ids, dtype=str), np.asarray(latents, dtype=np.float32), sha, path


def sync_index(cfg: Config, model: SearchModel, cache: ImageCache | None = None, force: bool = False,
               ) -> tuple[SimilarityIndex, NoveltyCalibration, SyncSummary]:
    """Load the saved search index of ``model``, bring it up to date with ``latents.npz``, or build it.

    Parameters
    ----------
    cfg : Config
    model : SearchModel
        Encoder (near-copy calibration) and decoder (reconstruction errors).
    cache : ImageCache, optional
        Default ``ImageCache(cfg.path("cache"))``.
    force : bool, default=False
        Rebuild even when the saved index is current.

    Returns
    -------
    index, calibration, summary
    """
    started = time.perf_counter()
    settings = search_settings(cfg)
    ids, latents, encoder_sha, lat_path = _read_latents(cfg, model.model_type, model.model_name)
    cache = cache or ImageCache(cfg.path("cache"))
    folder = index_dir(cfg, model.model_type, model.model_name)
    params = {"threshold_percentile": float(settings["threshold_percentile"]), "margin": float(settings["margin"]),
              "n_stored": int(settings["n_stored"])}
    calib_params = {"percentile": float(settings["threshold_percentile"]), "margin": float(settings["margin"]),
                    "texture_size": [int(v) for v in settings["texture_size"]]}
    state = _latents_file_state(lat_path)

    reason = "forced" if force else ""
    index = calibration = None
    if not force:
        try:
            index = SimilarityIndex.load(folder)
            calibration = NoveltyCalibration.load(folder)
        except (SearchIndexError, FileNotFoundError, KeyError, ValueError) as exc:
            reason = f"no usable saved index ({exc})"
            index = None
    if index is not None:
        meta = index.meta_
        saved_params = {k: meta["params"][k] for k in params}
        if meta.get("encoder_sha256") != encoder_sha:
            reason, index = "the latents come from another encoder", None
        elif saved_params != params or meta.get("calibration") != calib_params:
            reason, index = "search settings changed", None
        elif meta.get("latents_file") == state and len(index) == len(ids):
            return index, calibration, SyncSummary("loaded", len(index), 0, time.perf_counter() - started, folder)
    if index is not None:
        position = {pid: i for i, pid in enumerate(ids)}
        known = [position.get(pid) for pid in index.ids_]
        if any(p is None for p in known):
            reason, index = "pictures were removed from the latents", None
        elif not np.array_equal(latents[np.asarray(known, dtype=np.int64)], index.latents_):
            reason, index = "latents of indexed pictures changed", None
    if index is not None:
        new = np.setdiff1d(np.arange(len(ids)), np.asarray(known, dtype=np.int64))
        if len(new) == 0:  # latents.npz rewritten with the same content (an encode with nothing new)
            return index, calibration, SyncSummary("loaded", len(index), 0, time.perf_counter() - started, folder)
        added = index.add(ids[new], latents[new])
        if added:
            pixels = _cached_inputs(cache, ids[new], lat_path, model.input_shape)
            errors = model.reconstruction_errors(pixels, latents[new])
            if errors is not None:
                calibration = NoveltyCalibration(
                    calibration.percentile, calibration.margin,
                    np.concatenate([calibration.reconstruction_errors, errors]), calibration.texture_scores,
                    calibration.near_copy_distances, calibration.texture_size, calibration.min_texture_sample)
        _save(folder, index, calibration, encoder_sha, state, calib_params, model)
        summary = SyncSummary("added", len(index), added, time.perf_counter() - started, folder)
        log.info("search index %s: added %d pictures (now %d) in %.1f s", folder, added, len(index), summary.seconds)
        return index, calibration, summary

    log.info("building the search index of %s/%s over %d pictures (%s)", model.model_type, model.model_name,
             len(ids), reason or "first build")
    index = SimilarityIndex(**params).build(ids, latents)
    input_size, thumb_size = cache.input_size, cache.thumb_size
    errors = model.reconstruction_errors(_cached_inputs(cache, ids, lat_path, model.input_shape), latents)
    textures = texture_sample(cfg, ids, int(settings["texture_sample"]), settings["texture_size"],
                              int(settings["seed"]))
    copies = near_copy_distances(model, cache, ids, latents, int(settings["near_copy_sample"]), input_size,
                                 thumb_size, int(settings["seed"]))
    calibration = NoveltyCalibration(percentile=calib_params["percentile"], margin=calib_params["margin"],
                                     reconstruction_errors=errors if errors is not None else np.zeros(0),
                                     texture_scores=textures, near_copy_distances=copies,
                                     texture_size=tuple(calib_params["texture_size"]))
    _save(folder, index, calibration, encoder_sha, state, calib_params, model)
    summary = SyncSummary("built", len(index), len(index), time.perf_counter() - started, folder, reason)
    log.info("search index %s: %d pictures, distance threshold %.4g, %s; built in %.1f s", folder, len(index),
             index.threshold_, calibration.summary(), summary.seconds)
    return index, calibration, summary


def _cached_inputs(cache: ImageCache, ids: np.ndarray, lat_path: Path, shape) -> np.ndarray:
    try:
        return cache.get_pictures(ids.tolist(), shape)
    except KeyError as exc:
        raise SearchIndexError(f"{lat_path} and the ingest cache disagree: {exc.args[0]}; "
                               f"re-run `make encode`") from None


def _save(folder, index, calibration, encoder_sha, state, calib_params, model) -> None:
    calibration.save(folder)
    index.save(folder, extra_meta={"encoder_sha256": encoder_sha, "latents_file": state,
                                   "calibration": calib_params, "model_type": model.model_type,
                                   "model_name": model.model_name})
