"""Autoencoder features: the latents the encode step wrote for a trained model.

Read here directly (no TensorFlow), so the clustering step keeps its cold start.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from iss.config import Config
from iss.features.store import FeatureSet

LATENTS_FILE = "latents.npz"


def latents_path(cfg: Config, model_type: str, model_name: str) -> Path:
    """Where the encode step writes a model's latents."""
    return cfg.path("latents") / model_type / model_name / LATENTS_FILE


def read_latents(cfg: Config, model_type: str, model_name: str) -> tuple[np.ndarray, np.ndarray]:
    """A model's latents, checked: ``(ids: str array (n,), latents: float32 (n, d))``.

    Same file and result as ``iss.models.encode.load_latents``, without importing TensorFlow.

    Raises
    ------
    FileNotFoundError
        No latents for that model (says which step writes them).
    ValueError
        The file is malformed (names the problem).
    """
    path = latents_path(cfg, model_type, model_name)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no latents for model {model_type}/{model_name}; encode the pictures first with "
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


def autoencoder_features(cfg: Config, model_type: str | None = None, model_name: str | None = None) -> FeatureSet:
    """The latents of model ``model_type/model_name`` (default ``training.*``) as a feature set."""
    model_type = model_type or str(cfg.get("training.model_type"))
    model_name = model_name or str(cfg.get("training.model_name"))
    ids, latents = read_latents(cfg, model_type, model_name)
    return FeatureSet(ids, latents, "autoencoder", model_type, model_name,
                      {"source": f"autoencoder {model_type}/{model_name}"}, latents_path(cfg, model_type, model_name))
