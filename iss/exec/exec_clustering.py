"""Cluster a model's latents, record the run, render its reports.

Reads   ``<latents>/<model_type>/<model_name>/latents.npz`` (written by ``encode``), the
        ``clustering.<type>`` config section, and the labels file when present (evaluation only).
Writes  ``<models>/clustering/<type>_<model_name>_<version>/`` (the fitted clustering), the
        ``clustering_runs`` and ``pictures_embedding`` tables, and with ``--reports`` (default)
        ``<reports>/<run>/`` (scatter, silhouettes, mosaics...).

    python -m iss.exec.exec_clustering --clustering-type n2d [--model-type simple_conv]
        [--model-name demo] [--version N] [--fit-sample N] [--reports/--no-reports]

Kept free of TensorFlow: a fresh run on 14,000 latents takes seconds, not the minute that
importing TensorFlow and compiling UMAP's numba code used to cost (see iss.clustering.umap_reducer).
"""

from __future__ import annotations

import logging
import time
from typing import Optional

import typer

from iss.config import load_config

log = logging.getLogger("iss.exec.exec_clustering")
app = typer.Typer(add_completion=False, help=__doc__.split("\n")[0])


@app.command()
def exec_clustering(
    clustering_type: Optional[str] = typer.Option(
        None, "--clustering-type", help="classical | advanced | n2d | hdbscan (default: clustering.default)"),
    model_type: Optional[str] = typer.Option(None, "--model-type", help="default: training.model_type"),
    model_name: Optional[str] = typer.Option(None, "--model-name", help="default: training.model_name"),
    version: Optional[int] = typer.Option(None, "--version", help="default: clustering.<type>.version"),
    fit_sample: Optional[int] = typer.Option(
        None, "--fit-sample", help="fit on N pictures then predict the rest (0 = all; default: clustering.fit_sample)"),
    reports: bool = typer.Option(True, "--reports/--no-reports", help="render the run's HTML reports"),
) -> None:
    """Cluster the latents of a trained model and record the run."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    cfg = load_config()
    from iss.clustering.registry import run_clustering  # noqa: PLC0415 - after logging is set up
    from iss.db.engine import get_engine  # noqa: PLC0415

    log.info("start: clustering (%s)", clustering_type or cfg.get("clustering.default"))
    engine = get_engine(cfg.database_url)
    run_id = run_clustering(cfg, engine, clustering_type, model_type, model_name, version=version,
                            fit_sample=fit_sample)
    if reports:
        from iss.visualization.reports import render_run_reports  # noqa: PLC0415 - heavy (bokeh, matplotlib)

        index = render_run_reports(cfg, engine, run_id)
        print(f"run {run_id}: reports in {index}")
    else:
        print(f"run {run_id} recorded")
    log.info("end: clustering run %d in %.1f s", run_id, time.perf_counter() - started)


def main() -> None:
    """Entry point (``python -m iss.exec.exec_clustering``)."""
    app()


if __name__ == "__main__":
    main()
