"""Cluster the collection's features, record the run, render its reports.

Reads   the features of ``features.kind`` (the autoencoder's ``latents.npz`` written by ``encode``,
        or what ``features`` wrote for ``pixels`` / ``auto``), the ``clustering.<type>`` config
        section, and the labels file when present (evaluation only).
Writes  ``<models>/clustering/<type>_<model_name>_<version>/`` (the fitted clustering), the
        ``clustering_runs`` and ``pictures_embedding`` tables, and with ``--reports`` (default)
        ``<reports>/<run>/`` (scatter, silhouettes, mosaics...).

    python -m iss.exec.exec_clustering --clustering-type n2d [--features auto|pixels|autoencoder]
        [--model-type simple_conv] [--model-name demo] [--version N] [--fit-sample N] [--reports/--no-reports]

Kept free of TensorFlow: a fresh run on 14,000 latents takes seconds, not the minute that
importing TensorFlow and compiling UMAP's numba code used to cost (see iss.clustering.umap_reducer).
"""

from __future__ import annotations

import logging
import time
from typing import Optional

import typer

from iss.config import load_config
from iss.exec.common import setup_logging, step_engine, step_errors

log = logging.getLogger("iss.exec.exec_clustering")
app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


@app.command()
def exec_clustering(
    clustering_type: Optional[str] = typer.Option(
        None, "--clustering-type", help="classical | advanced | n2d | hdbscan (default: clustering.default)"),
    model_type: Optional[str] = typer.Option(None, "--model-type", help="default: training.model_type"),
    model_name: Optional[str] = typer.Option(None, "--model-name", help="default: training.model_name"),
    version: Optional[int] = typer.Option(None, "--version", help="default: clustering.<type>.version"),
    fit_sample: Optional[int] = typer.Option(
        None, "--fit-sample", help="fit on N pictures then predict the rest (0 = all; default: clustering.fit_sample)"),
    features: Optional[str] = typer.Option(
        None, "--features", help="autoencoder | pixels | auto (default: features.kind)"),
    reports: bool = typer.Option(True, "--reports/--no-reports", help="render the run's HTML reports"),
    mode: Optional[str] = typer.Option(None, "--mode", help="Config mode (default $MODE)."),
) -> None:
    """Cluster the features of the collection and record the run."""
    setup_logging()
    started = time.perf_counter()
    # imported here, after logging is set up; none of them imports TensorFlow
    from iss.clustering.registry import run_clustering
    from iss.db.engine import DatabaseError

    errors = [FileNotFoundError, ValueError, DatabaseError]
    if reports:
        from iss.visualization.data import ReportError

        errors.append(ReportError)
    with step_errors(log, *errors):
        cfg = load_config(mode=mode)
        log.info("exec_clustering: start (%s)", clustering_type or cfg.get("clustering.default"))
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
