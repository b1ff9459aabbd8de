"""The representation step: pictures -> feature vectors that clustering, reports and posters read.

Feature kinds (``features.kind`` in the config; a registry, one module per kind):

- ``autoencoder``: the trained model's latents, as the encode step wrote them
  (:mod:`iss.features.autoencoder`);
- ``pixels``: the ingest cache's pictures, standardised, reduced by PCA (:mod:`iss.features.pixels`);
- ``auto``: one of the two, chosen per collection by how reproducible its clusters are, with the
  choice, the reason and the numbers recorded (:mod:`iss.features.auto`).

:func:`build_features` is the ``features`` step (``make features``); :func:`load_features` is what
clustering calls. Importing this package does not import TensorFlow.
"""

from __future__ import annotations

import importlib
import logging

from iss.config import Config
from iss.features.store import FeatureSet, features_dir, read_features, write_features

log = logging.getLogger(__name__)

# kind -> (module, builder); adding a kind means one module and one line here
FEATURE_KINDS = {
    "autoencoder": ("iss.features.autoencoder", "autoencoder_features"),
    "pixels": ("iss.features.pixels", "pixel_feature_set"),
    "auto": ("iss.features", "auto_features"),
}
AUTO_NAME = "auto"


def check_kind(kind: str) -> str:
    """``kind`` if it is a feature kind, else a ``ValueError`` listing them."""
    if kind not in FEATURE_KINDS:
        raise ValueError(f"features.kind={kind!r}: expected one of {', '.join(map(repr, FEATURE_KINDS))}")
    return kind


def _builder(kind: str):
    module, name = FEATURE_KINDS[check_kind(kind)]
    return getattr(importlib.import_module(module), name)


def auto_features(cfg: Config, model_type: str | None = None, model_name: str | None = None) -> FeatureSet:
    """The autoencoder's latents or the pixels, whichever gives the more reproducible clusters
    (:func:`iss.features.auto.choose_features`); the record says which, why, and the numbers."""
    from iss.features.auto import choose_features
    from iss.features.autoencoder import autoencoder_features
    from iss.features.pixels import pixel_feature_set

    pixels = pixel_feature_set(cfg)
    candidates, sets = {"pixels": pixels.values}, {"pixels": pixels}
    try:
        latents = autoencoder_features(cfg, model_type, model_name)
    except FileNotFoundError as exc:
        log.warning("features auto: %s; choosing among the pixels only", exc)
    else:
        row_of = {pid: i for i, pid in enumerate(latents.ids.tolist())}
        missing = [pid for pid in pixels.ids.tolist() if pid not in row_of]
        if missing:
            log.warning("features auto: %d cached pictures have no latents (e.g. %s; run `make encode`): "
                        "choosing among the pixels only", len(missing), missing[0])
        else:
            candidates["autoencoder"] = latents.values[[row_of[pid] for pid in pixels.ids.tolist()]]
            sets["autoencoder"] = latents
    chosen, record = choose_features(candidates, cfg.get("features.auto"))
    log.info("features auto: %s", record["reason"])
    base = sets[chosen]
    return FeatureSet(pixels.ids, candidates[chosen], base.kind, base.model_type, base.model_name,
                      {"auto": record, "chosen_record": base.record, "source": base.record.get("source")})


def build_features(cfg: Config, kind: str | None = None, model_type: str | None = None,
                   model_name: str | None = None) -> FeatureSet:
    """The ``features`` step: compute the configured feature kind and write it (pixels, auto).

    Parameters
    ----------
    cfg : Config
    kind : {"autoencoder", "pixels", "auto"}, optional
        Default ``features.kind``.
    model_type, model_name : str, optional
        The autoencoder (default ``training.*``).

    Returns
    -------
    FeatureSet
        With ``path`` set to the file clustering will read.
    """
    kind = check_kind(kind or str(cfg.get("features.kind")))
    features = _builder(kind)(cfg, model_type, model_name)
    if kind == "autoencoder":  # the encode step's latents are the artefact
        return features
    write_features(cfg, AUTO_NAME if kind == "auto" else features.model_name, features)
    log.info("features %s: %d pictures x %d (%s) in %s", kind, len(features.ids), features.dim,
             features.record.get("source"), features.path)
    return features


def load_features(cfg: Config, kind: str | None = None, model_type: str | None = None,
                  model_name: str | None = None) -> FeatureSet:
    """The features clustering works on, as the features step left them.

    ``autoencoder`` reads the encode step's latents; ``pixels`` and ``auto`` read what
    ``make features`` wrote (a ``FileNotFoundError`` says so when it has not run).
    """
    kind = check_kind(kind or str(cfg.get("features.kind")))
    if kind == "autoencoder":
        return _builder(kind)(cfg, model_type, model_name)
    if kind == "auto":
        return read_features(cfg, AUTO_NAME)
    from iss.features.pixels import pixel_set_name

    return read_features(cfg, pixel_set_name(cfg))


def features_of_run(cfg: Config, run: dict) -> FeatureSet:
    """The features a recorded clustering run worked on (``params.features.path``), else its model's latents.

    Raises ``FileNotFoundError`` / ``ValueError`` as the readers do.
    """
    from pathlib import Path

    from iss.features.autoencoder import autoencoder_features
    from iss.features.store import FEATURES_FILE

    path = ((run.get("params") or {}).get("features") or {}).get("path")
    if path and Path(path).name == FEATURES_FILE:
        return read_features(cfg, Path(path).parent.name)
    return autoencoder_features(cfg, run["model_type"], run["model_name"])


__all__ = ["FEATURE_KINDS", "FeatureSet", "auto_features", "build_features", "check_kind", "features_dir", "features_of_run",
           "load_features", "read_features", "write_features"]
