"""Cluster the collection's features, record the run, render its reports.

Reads   the features of ``features.kind`` (the autoencoder's ``latents.npz`` written by ``encode``,
        or what ``features`` wrote for ``pixels`` / ``auto``), the ``clustering.<type>`` config
        section, and the labels file when present (evaluation only).
Writes  ``<models>/clustering/<type>_<model_name>_<version>/`` (the fitted clustering), the
        ``clustering_runs`` and ``pictures_embedding`` tables, and with ``--reports`` (default)
        ``<reports>/<run>/`` (scatter, silhouettes, mosaics...).

    iss exec-clustering --clustering-type n2d --n-clusters 8     # = make exec_clustering CLUSTERING=n2d
    iss exec-clustering --features pixels --n-clusters auto --set clustering.n2d.method=gmm
        [--model-type simple_conv] [--model-name demo] [--version N] [--fit-sample N] [--reports/--no-reports]
    iss exec-clustering --fit-sample 20000 --scheduler local   # predict the rest as Dask tasks (README "Compute")

Kept free of TensorFlow: a fresh run on 14,000 latents takes seconds, not the minute that
importing TensorFlow and compiling UMAP's numba code used to cost (see iss.clustering.umap_reducer).
"""

from __future__ import annotations

import logging
import time
from typing import Optional

import typer

from iss.exec.common import (ModeOption, SchedulerOption, SetOption, scheduler_override, setup_logging, step_app,
                              step_config, step_engine, step_errors)

log = logging.getLogger("iss.exec.exec_clustering")
app = step_app(__doc__)


def _n_clusters(value: str | None) -> int | str | None:
    """``--n-clusters``: a positive integer or ``auto``."""
    if value is None or value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        raise typer.BadParameter(f"expected a positive number of clusters or 'auto', got {value!r}")
    return int(value)


@app.command()
def exec_clustering(
    clustering_type: Optional[str] = typer.Option(
        None, "--clustering-type", help="classical | advanced | n2d | hdbscan (default: clustering.default)"),
    n_clusters: Optional[str] = typer.Option(
        None, "--n-clusters", callback=_n_clusters, metavar="K|auto",
        help="Number of clusters, or auto (best silhouette over k_range); default clustering.<type>.n_clusters"),
    model_type: Optional[str] = typer.Option(None, "--model-type", help="default: training.model_type"),
    model_name: Optional[str] = typer.Option(None, "--model-name", help="default: training.model_name"),
    version: Optional[int] = typer.Option(None, "--version", help="default: clustering.<type>.version"),
    fit_sample: Optional[int] = typer.Option(
        None, "--fit-sample", help="fit on N pictures then predict the rest (0 = all; default: clustering.fit_sample)"),
    features: Optional[str] = typer.Option(
        None, "--features", help="autoencoder | pixels | auto (default: features.kind)"),
    reports: bool = typer.Option(True, "--reports/--no-reports", help="render the run's HTML reports"),
    scheduler: Optional[str] = SchedulerOption,
    mode: Optional[str] = ModeOption,
    settings: Optional[list[str]] = SetOption,
) -> None:
    """Cluster the features of the collection and record the run."""
    setup_logging()
    started = time.perf_counter()
    # imported here, after logging is set up; none of them imports TensorFlow
    from iss.clustering.registry import run_clustering
    from iss.compute import ComputeError
    from iss.db.engine import DatabaseError

    errors = [FileNotFoundError, ValueError, DatabaseError, ComputeError]
    if reports:
        from iss.visualization.data import ReportError

        errors.append(ReportError)
    with step_errors(log, *errors):
        cfg = step_config(mode, settings, scheduler_override(scheduler))
        clustering_type = clustering_type or str(cfg.get("clustering.default"))
        if n_clusters is not None:
            cfg = cfg.with_overrides({"clustering": {clustering_type: {"n_clusters": n_clusters}}})
        log.info("exec_clustering: start (%s)", clustering_type)
        with step_engine(cfg) as engine:
            run_id = run_clustering(cfg, engine, clustering_type, model_type, model_name, version=version,
                                    fit_sample=fit_sample, features=features)
            if reports:
                from iss.visualization.reports import render_run_reports  # heavy (bokeh, matplotlib): only when asked

                index = render_run_reports(cfg, engine, run_id)
                typer.echo(f"run {run_id}: reports in {index}")
            else:
                typer.echo(f"run {run_id} recorded")
    log.info("exec_clustering: done, run %d in %.1f s", run_id, time.perf_counter() - started)


def main() -> None:
    """Entry point (``python -m iss.exec.exec_clustering``)."""
    app()


if __name__ == "__main__":
    main()
