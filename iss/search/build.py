"""Building, saving and updating the search index of a trained model.

Reads
    ``latents.npz`` of the model (the encode step), its encoder (the LiteRT export
    ``encoder.tflite``, see :mod:`iss.models.lite`), the ingest cache (thumbnails for the
    near-copy calibration) and a sample of the original pictures in ``cfg.path("collections")``
    (appearance and texture).
Writes
    ``cfg.path("processed") / "search" / <model_type> / <model_name> /``: ``index.npz`` +
    ``index.json`` (:class:`~iss.search.index.SimilarityIndex`) and ``novelty.npz`` +
    ``novelty.json`` (:class:`~iss.search.novelty.NoveltyCalibration`).

The index is built once and then kept in step with ``latents.npz``: new pictures are added
incrementally (exact, see :meth:`SimilarityIndex.add`; above ``search.approximate_above`` the new
pictures' own lists go through the HNSW graph, :mod:`iss.search.approximate`, built as Dask tasks over
shards of the collection when ``compute.scheduler`` is not ``auto``, :mod:`iss.search.shards`); a different encoder,
removed pictures or changed latents trigger a rebuild, and so does raising
``search.approximate_above`` above the size of an index whose lists were approximate (below the
threshold an index is exactly what an exact build gives). Nothing here imports TensorFlow unless the encoder has
no current LiteRT export (it is then exported once) or ``ai-edge-litert`` is not installed.
"""

from __future__ import annotations

import io
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from iss.config import Config
from iss.data.cache import ImageCache
from iss.models.store import ENCODER_FILE, EncodeError, latents_encoder_sha, latents_path, model_dir, read_latents
from iss.search.appearance import describe_files
from iss.search.index import SearchIndexError, SimilarityIndex
from iss.search.novelty import NOVELTY_VERSION, NoveltyCalibration, thumb_correlation
from iss.search.shards import ShardedBuild

log = logging.getLogger(__name__)

def search_settings(cfg: Config) -> dict:
    """The ``search`` config section (every key filled by the config schema)."""
    return cfg.section("search")


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
    """A trained encoder for encoding queries.

    Attributes
    ----------
    encoder : iss.models.lite.LiteEncoder or KerasEncoder
        ``input_shape`` and ``encode(uint8 (n, h, w, c)) -> float32 (n, d)``: the LiteRT export
        (no TensorFlow), or the Keras encoder when ``ai-edge-litert`` is not installed.
    model_type, model_name : str
    """

    encoder: object
    model_type: str
    model_name: str

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.encoder.input_shape)

    def encode(self, images: np.ndarray) -> np.ndarray:
        """Latents of uint8 pictures (n, h, w, c) -> float32 (n, d), as the encode step makes them."""
        return self.encoder.encode(np.asarray(images, dtype=np.uint8))


class KerasEncoder:
    """The Keras encoder behind the LiteEncoder interface (imports TensorFlow)."""

    def __init__(self, model):
        self.model = model
        self.input_shape = tuple(int(s) for s in model.inputs[0].shape[1:])

    def encode(self, images: np.ndarray) -> np.ndarray:
        from iss.models.encode import encode_images

        return encode_images(self.model, images)


def load_search_model(cfg: Config, model_type: str | None = None, model_name: str | None = None) -> SearchModel:
    """The trained encoder of a model, as its LiteRT export (exported first when missing or stale).

    Raises :class:`iss.models.store.EncodeError` when the model has no trained encoder.
    """
    model_type, model_name = model_names(cfg, model_type, model_name)
    folder = model_dir(cfg, model_type, model_name)
    if not (folder / ENCODER_FILE).is_file():
        root = folder.parent
        names = sorted(p.name for p in root.iterdir() if (p / ENCODER_FILE).is_file()) if root.is_dir() else []
        raise EncodeError(f"no trained encoder at {folder / ENCODER_FILE}; trained {model_type} models: "
                          f"{', '.join(names) or 'none'} (train one with `make training MODEL_TYPE={model_type}`)")
    try:
        from iss.models.lite import LiteEncoder, ensure_lite_encoder

        encoder = LiteEncoder(ensure_lite_encoder(folder))
    except ImportError as exc:
        log.warning("ai-edge-litert is not installed (%s): queries encode with TensorFlow, seconds slower to "
                    "start (pip install ai-edge-litert)", exc)
        from iss.models.encode import load_encoder

        encoder = KerasEncoder(load_encoder(cfg, model_type, model_name))
    return SearchModel(encoder, model_type, model_name)


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------

def _original_paths(cfg: Config, ids: np.ndarray) -> dict[str, Path]:
    """Original picture files of ``ids``: ``pictures.filename`` under ``cfg.path("collections")``, where present."""
    from iss.db.engine import get_engine
    from iss.db.queries import filenames_of

    folder = cfg.path("collections")
    engine = get_engine(cfg.database_url)
    try:
        filenames = filenames_of(engine, ids.tolist())
    finally:
        engine.dispose()
    return {picture_id: folder / name for picture_id, name in filenames.items() if (folder / name).is_file()}


def appearance_sample(cfg: Config, ids: np.ndarray, n: int, size, seed: int = 0,
                      ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Appearance descriptors and textures of up to ``n`` originals of ``ids`` (a seeded sample).

    Originals are decoded at ``size`` on all cores (PIL releases the GIL while decoding).

    Returns
    -------
    descriptors : float32 (m, appearance.DIM)
    textures : float32 (m,)
    read_ids : list of str
        Empty arrays when no original is readable (the checks are then off, with a warning).
    """
    paths = _original_paths(cfg, ids)
    names = sorted(paths)
    if not names or n <= 0:
        descriptors, textures, _ = describe_files([], size)
        return descriptors, textures, []
    rng = np.random.default_rng(seed)
    chosen = [names[i] for i in sorted(rng.choice(len(names), size=min(n, len(names)), replace=False))]
    workers = max(1, min(os.cpu_count() or 1, 8))
    parts = [chosen[i::workers] for i in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda part: describe_files([paths[name] for name in part], size, log), parts))
    descriptors = np.concatenate([r[0] for r in results])
    textures = np.concatenate([r[1] for r in results])
    ids_of = {path: picture_id for picture_id, path in paths.items()}
    read = [ids_of[path] for r in results for path in r[2]]
    return descriptors, textures, read


def edited_copy(thumb: np.ndarray, rng: np.random.Generator) -> io.BytesIO:
    """A slightly edited copy of a thumbnail, as JPEG bytes: brightness +-10%, 2-5% crop, JPEG quality 50-90."""
    image = Image.fromarray(thumb)
    width, height = image.size
    crop = rng.uniform(0.02, 0.05)
    dx, dy = int(round(width * crop)), int(round(height * crop))
    left, top = int(rng.integers(0, dx + 1)), int(rng.integers(0, dy + 1))
    image = image.crop((left, top, width - dx + left, height - dy + top))
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.9, 1.1))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(50, 91)))
    buffer.seek(0)
    return buffer


def near_copy_distances(model: SearchModel, cache: ImageCache, ids: np.ndarray, latents: np.ndarray, n: int,
                        input_size, thumb_size, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Latent distances and thumbnail correlations between edited copies of ``n`` collection
    thumbnails and their pictures.

    The copies go through :func:`iss.data.images.decode_picture`, the query path, so the
    distances are what an edited copy uploaded to the search would see.

    Returns
    -------
    distances, correlations : float32 arrays, shape (m,)
    """
    from iss.data.images import decode_picture

    cached = np.array([pid in cache for pid in ids])
    rows = np.flatnonzero(cached)
    if len(rows) == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(rows, size=min(n, len(rows)), replace=False))
    thumbs = cache.get_thumbs(ids[rows].tolist())
    decoded = [decode_picture(edited_copy(t, rng), input_size, thumb_size) for t in thumbs]
    copies = model.encode(np.stack([d.input for d in decoded]))
    correlations = np.array([thumb_correlation(d.thumb, t) for d, t in zip(decoded, thumbs)], np.float32)
    return np.sqrt(((copies - latents[rows]) ** 2).sum(axis=1)).astype(np.float32), correlations


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


def _sample_calibration(cfg: Config, settings: dict, ids: np.ndarray, n: int):
    return appearance_sample(cfg, ids, n, settings["texture_size"], int(settings["seed"]))


def sync_index(cfg: Config, model: SearchModel, cache: ImageCache | None = None, force: bool = False,
               ) -> tuple[SimilarityIndex, NoveltyCalibration, SyncSummary]:
    """Load the saved search index of ``model``, bring it up to date with ``latents.npz``, or build it.

    A saved index whose ``latents.npz`` has not changed since (same size and modification time,
    same encoder, same settings) is loaded without reading the latents file.

    Parameters
    ----------
    cfg : Config
    model : SearchModel
        Encoder (near-copy calibration).
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
    lat_path = latents_path(cfg, model.model_type, model.model_name)
    if not lat_path.is_file():
        raise EncodeError(f"no latents at {lat_path}; run `make encode MODEL_TYPE={model.model_type}` first")
    encoder_sha, state = latents_encoder_sha(lat_path), _latents_file_state(lat_path)
    cache = cache or ImageCache(cfg.path("cache"))
    folder = index_dir(cfg, model.model_type, model.model_name)
    # the distance check is a plain percentile of the leave-one-out distances (a conformal p-value):
    # no margin; search.margin widens the texture guards only
    params = {"threshold_percentile": float(settings["threshold_percentile"]), "margin": 1.0,
              "n_stored": int(settings["n_stored"])}
    approximate_above = int(settings["approximate_above"])  # not in params: changing it rebuilds only the graph
    shard_build = ShardedBuild.from_config(cfg)  # where a graph is built: here, or in shards on Dask
    calib_params = {"version": NOVELTY_VERSION, "percentile": float(settings["threshold_percentile"]),
                    "margin": float(settings["margin"]), "texture_size": [int(v) for v in settings["texture_size"]],
                    "texture_sample": int(settings["texture_sample"])}

    reason = "forced" if force else ""
    index = calibration = None
    if not force:
        try:
            index, calibration = load_index(folder, approximate_above, shard_build)
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
        elif not index.lists_exact_ and not index.uses_approximate:
            # below search.approximate_above the index must be what an exact build gives
            reason, index = "search.approximate_above now asks for exact neighbour lists", None
        elif meta.get("latents_file") == state:
            if index.approximate_rebuilt_:
                save_index(folder, index, calibration, encoder_sha, state, calib_params, model)
            return index, calibration, SyncSummary("loaded", len(index), 0, time.perf_counter() - started, folder)
    ids, latents = read_latents(cfg, model.model_type, model.model_name)
    ids, latents = np.asarray(ids, dtype=str), np.asarray(latents, dtype=np.float32)
    if index is not None:
        position = {pid: i for i, pid in enumerate(ids)}
        known = [position.get(pid) for pid in index.ids_]
        if any(p is None for p in known):
            reason, index = "pictures were removed from the latents", None
        elif not np.array_equal(latents[np.asarray(known, dtype=np.int64)], index.latents_):
            reason, index = "latents of indexed pictures changed", None
    if index is not None:
        new = np.setdiff1d(np.arange(len(ids)), np.asarray(known, dtype=np.int64))
        added = index.add(ids[new], latents[new]) if len(new) else 0
        room = calib_params["texture_sample"] - calibration.n_sampled
        if added and room > 0:  # the calibration sample grows with the collection up to texture_sample
            descriptors, textures, _ = _sample_calibration(cfg, settings, ids[new], room)
            calibration = calibration.with_samples(descriptors, textures)
        save_index(folder, index, calibration, encoder_sha, state, calib_params, model)
        summary = SyncSummary("added" if added else "loaded", len(index), added, time.perf_counter() - started, folder)
        if added:
            log.info("search index %s: added %d pictures (now %d) in %.1f s", folder, added, len(index),
                     summary.seconds)
        return index, calibration, summary

    log.info("building the search index of %s/%s over %d pictures (%s)", model.model_type, model.model_name,
             len(ids), reason or "first build")
    index = SimilarityIndex(**params, approximate_above=approximate_above, shard_build=shard_build).build(ids, latents)
    descriptors, textures, _ = _sample_calibration(cfg, settings, ids, calib_params["texture_sample"])
    copies, correlations = near_copy_distances(model, cache, ids, latents, int(settings["near_copy_sample"]),
                                               cache.input_size, cache.thumb_size, int(settings["seed"]))
    calibration = NoveltyCalibration(percentile=calib_params["percentile"], margin=calib_params["margin"],
                                     near_copy_distances=copies, near_copy_correlations=correlations,
                                     texture_size=tuple(calib_params["texture_size"])).with_samples(descriptors, textures)
    if not calibration.appearance_enabled:
        log.warning("only %d original pictures of the index readable in %s: the appearance and texture checks of "
                    "the search are off", calibration.n_sampled, cfg.path("collections"))
    save_index(folder, index, calibration, encoder_sha, state, calib_params, model)
    summary = SyncSummary("built", len(index), len(index), time.perf_counter() - started, folder, reason)
    log.info("search index %s: %d pictures, distance threshold %.4g, %s; built in %.1f s", folder, len(index),
             index.threshold_, calibration.summary(), summary.seconds)
    return index, calibration, summary


def load_index(folder: Path, approximate_above: int | None = None, shard_build: ShardedBuild | None = None,
               ) -> tuple[SimilarityIndex, NoveltyCalibration]:
    """The one reader of the search index artefact: the index and its novelty calibration.

    ``approximate_above`` (``search.approximate_above``) overrides the saved one, and
    ``shard_build`` says where a graph to rebuild is built (:meth:`SimilarityIndex.load`)."""
    return SimilarityIndex.load(folder, approximate_above, shard_build), NoveltyCalibration.load(folder)


def save_index(folder, index, calibration, encoder_sha, state, calib_params, model) -> None:
    """The one writer of the search index artefact (each file replaced atomically), with what
    :func:`sync_index` checks before reusing it: the encoder, the latents file's state, the settings."""
    calibration.save(folder)
    index.save(folder, extra_meta={"encoder_sha256": encoder_sha, "latents_file": state,
                                   "calibration": calib_params, "model_type": model.model_type,
                                   "model_name": model.model_name})
