"""Autoencoder features: the latents the encode step wrote for a trained model.

Read with :func:`iss.models.store.read_latents`, the one reader of ``latents.npz`` (no TensorFlow),
so the clustering step keeps its cold start.
"""

from __future__ import annotations

from iss.config import Config
from iss.features.store import FeatureSet
from iss.models.store import LATENTS_FILE, latents_path, read_latents  # noqa: F401 - the latents' owner


def autoencoder_features(cfg: Config, model_type: str | None = None, model_name: str | None = None) -> FeatureSet:
    """The latents of model ``model_type/model_name`` (default ``training.*``) as a feature set."""
    model_type = model_type or str(cfg.get("training.model_type"))
    model_name = model_name or str(cfg.get("training.model_name"))
    ids, latents = read_latents(cfg, model_type, model_name)
    return FeatureSet(ids, latents, "autoencoder", model_type, model_name,
                      {"source": f"autoencoder {model_type}/{model_name}"}, latents_path(cfg, model_type, model_name))
