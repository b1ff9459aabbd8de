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


def load_latents(cfg: Config, model_type: str, model_name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, latents)`` written by the encode step: str ``(n,)`` and float32 ``(n, d)``."""
    path = latents_path(cfg, model_type, model_name)
    if not path.is_file():
        raise EncodeError(f"no latents at {path}; run `make encode MODEL_TYPE={model_type}` first")
    with np.load(path, allow_pickle=False) as data:
        return data["ids"].astype(str), data["latents"].astype(np.float32, copy=False)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (which encoder made the latents, which encoder an export came from)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
