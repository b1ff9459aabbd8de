"""Where a trained model and its latents live on disk, readable without TensorFlow.

Training (:mod:`iss.models.training`) writes a model folder and the encode step
(:mod:`iss.models.encode`) writes the latents; both import TensorFlow. Commands that only read
them (the similar-picture search, :mod:`iss.search`) import this module instead, so they start
in well under a second.

Layout::

    cfg.path("models") / <model_type> / <model_name> / encoder.keras, decoder.keras, record.json,
                                                       encoder.tflite (+ .json, see iss.models.lite)
    cfg.path("latents") / <model_type> / <model_name> / latents.npz
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from iss.artefacts import atomic_path
from iss.config import Config

RECORD_FILE = "record.json"
ENCODER_FILE = "encoder.keras"
DECODER_FILE = "decoder.keras"
LATENTS_FILE = "latents.npz"


class EncodeError(Exception):
    """No encoder to load, or latents that cannot be merged."""


def model_dir(cfg: Config, model_type: str, model_name: str) -> Path:
    """``cfg.path("models") / model_type / model_name``."""
    return cfg.path("models") / model_type / model_name


def latents_path(cfg: Config, model_type: str, model_name: str | None = None) -> Path:
    """``cfg.path("latents") / model_type / model_name / "latents.npz"``."""
    model_name = model_name or str(cfg.get("training.model_name"))
    return cfg.path("latents") / model_type / model_name / LATENTS_FILE


class LatentsNotFound(EncodeError, FileNotFoundError):
    """No ``latents.npz`` for a model: an :class:`EncodeError` for the encode side, a ``FileNotFoundError``
    for the readers of features."""


def read_latents(cfg: Config, model_type: str, model_name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The one reader of ``latents.npz``: ``(ids, latents)``, str ``(n,)`` and float32 ``(n, d)``, checked.

    Raises
    ------
    LatentsNotFound
        No latents for that model (says which step writes them).
    ValueError
        The file is malformed: missing arrays, shapes that disagree, no pictures, repeated ids,
        NaN or infinite values (names the problem and the fix).
    """
    model_name = model_name or str(cfg.get("training.model_name"))
    path = latents_path(cfg, model_type, model_name)
    if not path.is_file():
        raise LatentsNotFound(
            f"no latents at {path} for model {model_type}/{model_name}; encode the pictures first with "
            f"`make encode MODEL_TYPE={model_type}` (python -m iss.exec.encode --model-type {model_type})")
    with np.load(path, allow_pickle=False) as data:
        missing = {"ids", "latents"} - set(data.files)
        if missing:
            raise ValueError(f"{path}: missing array(s) {', '.join(sorted(missing))}; expected 'ids' and 'latents' "
                             f"(re-run the encode step)")
        ids, latents = data["ids"].astype(str), data["latents"]
    if ids.ndim != 1 or len(latents) != len(ids):
        raise ValueError(f"{path}: 'ids' has shape {ids.shape} but 'latents' has {latents.shape}; expected (n,) and "
                         f"(n, d) (re-run the encode step)")
    if len(ids) == 0:
        raise ValueError(f"{path}: no pictures encoded; run populate_db and encode first")
    if len(np.unique(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate picture ids (re-run the encode step)")
    latents = np.ascontiguousarray(latents.reshape(len(latents), -1), dtype=np.float32)
    bad = ~np.isfinite(latents).all(axis=1)
    if bad.any():
        raise ValueError(f"{path}: {int(bad.sum())} pictures have NaN or infinite latents (e.g. {ids[bad][0]}); "
                         f"the model may have diverged, retrain it")
    return ids, latents


load_latents = read_latents  # the name the encode side and its tests use


def latents_encoder_sha(path: Path) -> str:
    """The ``encoder_sha256`` recorded in ``latents.npz`` (reads that member only; ``""`` when absent)."""
    with np.load(path, allow_pickle=False) as data:
        return str(data["encoder_sha256"]) if "encoder_sha256" in data.files else ""


def write_latents(path: Path, ids: np.ndarray, latents: np.ndarray, encoder_sha: str) -> Path:
    """The one writer of ``latents.npz`` (atomically replaced): ``ids`` as str, ``latents`` as float32, and
    ``encoder_sha256``, which encoder made them."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez would append ".npz"
        np.savez(f, ids=np.asarray(ids).astype(str), latents=np.asarray(latents).astype(np.float32, copy=False),
                 encoder_sha256=np.array(encoder_sha))
    return path


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (which encoder made the latents, which encoder an export came from)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
