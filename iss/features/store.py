"""The features artefact: one reader and one writer for what the ``features`` step hands to clustering.

Layout, under ``paths.features`` (default ``<paths.processed>/features``)::

    <name>/features.npz   ids (str, (n,)) and features (float32, (n, d)), in ingest-cache order
    <name>/record.json    kind, source, dimension, parameters; for ``auto`` what it chose and why

``name`` is ``pixels-<size><w>x<h>`` for pixel features and ``auto`` for the automatic choice.
The autoencoder's features are the encode step's ``latents.npz`` itself (no copy): see
:mod:`iss.features.autoencoder`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from iss.artefacts import atomic_path
from iss.config import Config

FEATURES_FILE = "features.npz"
RECORD_FILE = "record.json"


@dataclass
class FeatureSet:
    """Feature vectors of a collection, and where they came from.

    Attributes
    ----------
    ids : ndarray of str, shape (n,)
        Picture ids.
    values : float32 ndarray, shape (n, d)
        One feature vector per picture.
    kind : {"autoencoder", "pixels"}
        What the vectors are.
    model_type, model_name : str
        Their identity in the clustering registry (``clustering_runs``): the autoencoder's type
        and name, or ``"pixels"`` and ``pixels-<size><w>x<h>``. Runs on different features
        never share a row or a folder.
    record : dict
        Parameters and measurements (``auto``: ``chosen``, ``reason``, ``scores``).
    path : Path or None
        The file the vectors were read from or written to.
    """

    ids: np.ndarray
    values: np.ndarray
    kind: str
    model_type: str
    model_name: str
    record: dict = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self):
        self.ids = np.asarray(self.ids).astype(str)
        self.values = np.ascontiguousarray(np.asarray(self.values, dtype=np.float32).reshape(len(self.values), -1))
        if self.ids.ndim != 1 or len(self.ids) != len(self.values):
            raise ValueError(f"features: {len(self.ids)} ids for {len(self.values)} vectors")

    @property
    def dim(self) -> int:
        """Length ``d`` of a feature vector."""
        return int(self.values.shape[1])


def features_root(cfg: Config) -> Path:
    """``paths.features``."""
    return cfg.path("features")


def features_dir(cfg: Config, name: str) -> Path:
    """Folder of one named feature set."""
    return features_root(cfg) / name


def write_features(cfg: Config, name: str, features: FeatureSet) -> Path:
    """Write ``features.npz`` and ``record.json`` of ``name`` (atomically replaced); returns the npz path."""
    folder = features_dir(cfg, name)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FEATURES_FILE
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, ids=features.ids, features=features.values)
    record = {"kind": features.kind, "model_type": features.model_type, "model_name": features.model_name,
              "n": int(len(features.ids)), "dim": features.dim, **features.record}
    (folder / RECORD_FILE).write_text(json.dumps(record, indent=2, default=_json_default) + "\n")
    features.path = path
    return path


def read_features(cfg: Config, name: str) -> FeatureSet:
    """The feature set ``name`` written by the features step, checked.

    Raises
    ------
    FileNotFoundError
        Not computed yet (says which step writes it).
    ValueError
        Malformed file or record (names the problem).
    """
    folder = features_dir(cfg, name)
    path = folder / FEATURES_FILE
    if not path.is_file() or not (folder / RECORD_FILE).is_file():
        raise FileNotFoundError(f"{path}: no {name} features; compute them first with `make features` "
                                f"(python -m iss.exec.features)")
    record = json.loads((folder / RECORD_FILE).read_text())
    with np.load(path, allow_pickle=False) as data:
        if not {"ids", "features"} <= set(data.files):
            raise ValueError(f"{path}: expected arrays 'ids' and 'features', got {data.files} (re-run `make features`)")
        ids, values = data["ids"].astype(str), data["features"]
    if len(ids) == 0 or len(ids) != len(values):
        raise ValueError(f"{path}: {len(ids)} ids for {len(values)} feature vectors (re-run `make features`)")
    if not np.isfinite(values).all():
        raise ValueError(f"{path}: NaN or infinite features (re-run `make features`)")
    missing = {"kind", "model_type", "model_name"} - set(record)
    if missing:
        raise ValueError(f"{folder / RECORD_FILE}: missing {', '.join(sorted(missing))} (re-run `make features`)")
    extra = {k: v for k, v in record.items() if k not in ("kind", "model_type", "model_name", "n", "dim")}
    return FeatureSet(ids, values, record["kind"], record["model_type"], record["model_name"], extra, path)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
