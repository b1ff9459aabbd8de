"""Clustering runs: fit a clustering on the collection's features, save it, record it in the database.

Reads
    the features of ``features.kind`` (:func:`iss.features.load_features`: the autoencoder's
    ``latents.npz``, or what ``make features`` wrote for ``pixels`` / ``auto``), the
    ``clustering.<type>`` config section, ``clustering.fit_sample`` (and, when fitting on a sample,
    ``compute``: where the rest is predicted, :mod:`iss.clustering.predict`), and — for evaluation
    only — ``cfg.path("labels")`` (``pictures_id,kind``) when it exists.
Writes
    ``cfg.path("models")/clustering/<type>_<model_name>_<version>/`` (the fitted estimator),
    one ``clustering_runs`` row (type, version, the features' identity as model type and name,
    params with the feature kind and, for ``auto``, what it chose and why, metrics, time) and one
    ``pictures_embedding`` row per picture (x, y, label, silhouette). The features' identity is
    the autoencoder's type and name, or ``pixels`` / ``pixels-<size><w>x<h>``, so runs on
    different features never share a row or a folder.

Re-running a version replaces its rows in one transaction: the ``clustering_runs`` row keeps
its ``run_id`` and is updated, its ``pictures_embedding`` rows are deleted and rewritten.

A run is all or nothing: the fitted clustering is saved to a hidden staging folder and moved
into place only once its database rows are committed, so a failed run leaves no model folder
without its row (and keeps the previous model of that version). The labels file is for
evaluation only: one that cannot be read (a spreadsheet's byte-order mark and CRLF are fine)
skips the scores with a warning, never the run.

This module must stay free of TensorFlow (the clustering step's cold start depends on it):
the latents file is read directly rather than through ``iss.models.encode``.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import math
import time
import warnings
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Engine

from iss.artefacts import replace_folder
from iss.clustering import clustering_class, estimator_params, make_clustering
from iss.clustering.base import ClusteringBase, ClusteringWarning
from iss.clustering.metrics import clustering_metrics, external_metrics, silhouette_per_sample
from iss.clustering.predict import assign_collection
from iss.config import Config
from iss.db import schema
from iss.db.queries import replace_rows
from iss.features import load_features
from iss.features.autoencoder import LATENTS_FILE, latents_path, read_latents  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

def read_known_labels(cfg: Config, ids: np.ndarray) -> np.ndarray | None:
    """Known kinds of ``ids`` from ``cfg.path("labels")`` (evaluation only), None when no file.

    Read as a spreadsheet may save it: UTF-8 with or without a byte-order mark, CRLF or LF line
    ends, ``,`` ``;`` or tab between fields.

    Returns
    -------
    ndarray of object, shape (n,) or None
        The kind of each id, None where the file has no row for it.

    Raises
    ------
    ValueError
        The file is not UTF-8 or has no ``pictures_id`` and ``kind`` columns (names the file and
        what was found).
    """
    if not cfg.get("paths.labels"):
        return None
    path = cfg.path("labels")
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as CSV UTF-8") from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(text.splitlines(), dialect=dialect)
    fields = [name.strip() for name in reader.fieldnames or []]
    if not {"pictures_id", "kind"} <= set(fields):
        raise ValueError(f"{path}: expected a header 'pictures_id,kind', got {reader.fieldnames}")
    reader.fieldnames = fields
    kinds = {row["pictures_id"].strip(): (row["kind"] or "").strip() for row in reader if row.get("pictures_id")}
    return np.array([kinds.get(i) for i in ids.tolist()], dtype=object)


def _evaluation_labels(cfg: Config, ids: np.ndarray) -> np.ndarray | None:
    """:func:`read_known_labels`, or None with a warning when the file cannot be used: scores are optional."""
    try:
        return read_known_labels(cfg, ids)
    except (OSError, ValueError, csv.Error) as exc:
        log.warning("evaluation labels skipped, the run goes on without ACC/NMI/ARI: %s", exc)
        return None


def run_dir(cfg: Config, clustering_type: str, model_name: str, version: int) -> Path:
    """Folder of a saved clustering run."""
    return cfg.path("models") / "clustering" / f"{clustering_type}_{model_name}_{version}"


def run_clustering(cfg: Config, engine: Engine, clustering_type: str | None = None, model_type: str | None = None,
                   model_name: str | None = None, version: int | None = None, params: dict | None = None,
                   fit_sample: int | None = None, features: str | None = None) -> int:
    """Fit a clustering on the collection's features, save it and record the run (see the module docstring).

    Parameters
    ----------
    cfg : Config
    engine : Engine
    clustering_type : str, optional
        classical | advanced | n2d | hdbscan; default ``clustering.default``.
    model_type, model_name : str, optional
        The autoencoder whose latents ``features="autoencoder"`` reads (and ``auto`` compared);
        default ``training.model_type`` / ``training.model_name``.
    version : int, optional
        Default ``clustering.<type>.version``.
    params : dict, optional
        Estimator parameters overriding the config section (same keys).
    fit_sample : int, optional
        Fit on this many randomly chosen pictures, then predict the others with the saved
        model (0 = fit on all). Default ``clustering.fit_sample``.
    features : {"autoencoder", "pixels", "auto"}, optional
        Default ``features.kind`` (``autoencoder`` when the config has no ``features`` section).

    Returns
    -------
    int
        The run_id (the same one when a version is re-run).
    """
    started = time.perf_counter()
    clustering_type = clustering_type or cfg.get("clustering.default")
    clustering_class(clustering_type)  # an unknown type: ValueError listing the valid ones
    feature_set = load_features(cfg, features, model_type, model_name)
    model_type, model_name = feature_set.model_type, feature_set.model_name
    section = cfg.section(f"clustering.{clustering_type}")
    version = int(version if version is not None else section["version"])
    estimator = make_clustering(clustering_type, **estimator_params(clustering_type, {**section, **(params or {})}))
    fit_sample = int(cfg.get("clustering.fit_sample") if fit_sample is None else fit_sample)
    if fit_sample < 0:
        raise ValueError(f"fit_sample={fit_sample}: expected 0 (fit on every picture) or a positive sample size")

    ids, latents = feature_set.ids, feature_set.values
    n = len(ids)
    out_dir = run_dir(cfg, clustering_type, model_name, version)
    log.info("clustering %d %s features (%d-d, %s) with %s v%d%s", n, feature_set.kind, latents.shape[1],
             feature_set.record.get("source") or f"{model_type}/{model_name}", clustering_type, version,
             f", fitted on a sample of {fit_sample}" if 0 < fit_sample < n else "")
    features_record = {"kind": str(features or cfg.get("features.kind")),
                       "used": feature_set.kind, "path": str(feature_set.path), "dim": feature_set.dim,
                       **{k: v for k, v in feature_set.record.items() if k in ("source", "auto")}}
    # the model is staged beside out_dir and takes its place once the run's rows are committed
    # (replacing the previous one of this version); a failed run leaves no model folder behind
    with replace_folder(out_dir) as staging:
        run_id = _fit_and_record(cfg, engine, estimator, clustering_type, version, model_type, model_name,
                                 fit_sample, ids, latents, features_record, staging, out_dir, started)
    return run_id


def _fit_and_record(cfg, engine, estimator, clustering_type, version, model_type, model_name, fit_sample, ids,
                    latents, features_record, staging, out_dir, started) -> int:
    n = len(ids)
    timings: dict[str, float] = {}
    tick = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClusteringWarning)  # logged below, and kept in the run's metrics
        if 0 < fit_sample < n:
            # as the original: fit on a sample, save, then the saved model predicts the rest
            seed = int(getattr(estimator, "random_state", 0) or 0)
            fitted = np.sort(np.random.default_rng(seed).choice(n, size=fit_sample, replace=False))
            estimator.fit(latents[fitted])
            timings["fit_s"] = time.perf_counter() - tick
            estimator.save(staging)
            tick = time.perf_counter()
            rest = np.setdiff1d(np.arange(n), fitted)
            # in partitions, here or as Dask tasks (compute.scheduler): iss.clustering.predict
            assigned = assign_collection(cfg, ClusteringBase.load(staging), latents[rest])
            labels = np.empty(n, dtype=np.int64)
            reduced = np.empty((n, estimator.reduced_.shape[1]), dtype=np.float32)
            coords = np.empty((n, 2), dtype=np.float32)
            labels[fitted], reduced[fitted], coords[fitted] = estimator.labels_, estimator.reduced_, estimator.embedding_
            labels[rest], reduced[rest], coords[rest] = assigned.labels, assigned.reduced, assigned.coords
            timings["predict_s"] = time.perf_counter() - tick
        else:
            fitted = np.arange(n)
            estimator.fit(latents)
            timings["fit_s"] = time.perf_counter() - tick
            estimator.save(staging)
            labels, reduced, coords = estimator.labels_, estimator.reduced_, estimator.embedding_
    if estimator.n_distinct_ < len(fitted):
        log.info("%d of the %d pictures fitted are copies of others: fitted on the %d distinct ones, each copy "
                 "shares its original's cluster", len(fitted) - estimator.n_distinct_, len(fitted),
                 estimator.n_distinct_)
    for message in estimator.fit_warnings_:
        log.warning("%s", message)

    tick = time.perf_counter()
    silhouettes = silhouette_per_sample(reduced, labels, random_state=0)
    metrics = clustering_metrics(reduced, labels, silhouettes=silhouettes)
    space = "features" if getattr(estimator, "layout_", None) == "direct" else (
        "umap" if clustering_type in ("n2d", "hdbscan") else "pca")
    metrics["space"] = f"{space}-{reduced.shape[1]}d"
    metrics["k_sweep"] = ({str(k): v for k, v in estimator.k_sweep_.items()}
                          if getattr(estimator, "k_sweep_", None) else None)
    metrics["n_distinct_fitted"] = int(estimator.n_distinct_)
    metrics["warnings"] = list(estimator.fit_warnings_)
    if metrics["k_sweep"]:
        metrics["k_criterion"] = (getattr(estimator, "k_sweep_criterion_", None)
                                  or getattr(estimator, "k_criterion", "silhouette"))
    if getattr(estimator, "k_stability_", None):
        metrics["k_stability"] = {str(k): round(v, 4) for k, v in estimator.k_stability_.items()}
    if getattr(estimator, "k_reason_", None):
        metrics["k_reason"] = estimator.k_reason_
    if getattr(estimator, "merge_order_", None) is not None:  # clusters in the merge tree's leaf order
        metrics["merge_order"] = list(estimator.merge_order_)
    known = _evaluation_labels(cfg, ids)
    if known is not None:
        has = np.array([k is not None for k in known], dtype=bool)
        if has.any():
            metrics.update(external_metrics(known[has].astype(str), labels[has]))
            metrics["n_labelled"] = int(has.sum())
    timings["metrics_s"] = time.perf_counter() - tick

    run_params = {
        "estimator": estimator.get_params(deep=False),
        "fit_sample": fit_sample,
        "n_fitted": int(len(fitted)),
        "n_pictures": int(n),
        "latent_dim": int(latents.shape[1]),
        "latents": features_record["path"],
        "features": features_record,
    }
    run_id = _record_run(engine, clustering_type, version, model_type, model_name, run_params, metrics, timings,
                         started, out_dir, ids, coords, labels, silhouettes)
    log.info("run %d: %d clusters, silhouette %s, %d pictures recorded in %.1f s (model in %s)", run_id,
             metrics["n_clusters"], _fmt(metrics["silhouette"]), n, time.perf_counter() - started, out_dir)
    return run_id


def _record_run(engine, clustering_type, version, model_type, model_name, run_params, metrics, timings, started,
                out_dir, ids, coords, labels, silhouettes) -> int:
    runs, embedding = schema.clustering_runs, schema.pictures_embedding
    tick = time.perf_counter()
    rows = [{"pictures_id": pid, "pictures_x": float(x), "pictures_y": float(y), "label": int(lab),
             "silhouette": _finite(s)}
            for pid, (x, y), lab, s in zip(ids.tolist(), coords.tolist(), labels.tolist(), silhouettes.tolist())]
    key = ((runs.c.clustering_type == clustering_type) & (runs.c.clustering_version == version)
           & (runs.c.model_type == model_type) & (runs.c.model_name == model_name))
    with engine.begin() as conn:  # one transaction: the run and its pictures, or nothing
        run_id = conn.execute(select(runs.c.run_id).where(key)).scalar_one_or_none()
        timings["total_s"] = time.perf_counter() - started  # up to the database writes
        values = {"params": _jsonable(run_params), "metrics": _jsonable({**metrics, "timings": timings}),
                  "n_clusters": int(metrics["n_clusters"]), "path": str(out_dir), "created_at": dt.datetime.now()}
        if run_id is None:
            run_id = conn.execute(runs.insert().values(
                clustering_type=clustering_type, clustering_version=version, model_type=model_type,
                model_name=model_name, **values)).inserted_primary_key[0]
        else:
            conn.execute(runs.update().where(runs.c.run_id == run_id).values(**values))
        for row in rows:
            row["run_id"] = run_id
        replace_rows(conn, embedding, embedding.c.run_id == run_id, rows)
    log.debug("database writes: %.2f s", time.perf_counter() - tick)
    return int(run_id)


def _finite(value) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _jsonable(value):
    """Plain JSON types: numpy scalars and arrays converted, NaN/inf -> None (MariaDB's JSON rejects NaN)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
