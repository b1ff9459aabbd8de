"""Step `facets`: explore the whole collection in a browser, offline.

Reads: the database (every picture with its location and split, and the embedding of the latest
clustering run, or of every run with ``reports.facets_runs: all``) and the ingest cache's thumbnails.
Writes: ``paths.reports/facets_overview.html`` (statistics of every column, by split),
``paths.reports/facets_dive.html`` + ``facets_sprite.jpg`` (every picture, binnable and colourable
by any column), ``paths.reports/thumbs/<id>.jpg`` and ``paths.reports/index.html``.

    python -m iss.exec.facets
    python -m iss.exec.facets --all-runs
"""

from __future__ import annotations

import logging
from typing import Optional

import typer

from iss.config import load_config
from iss.data.cache import CacheError
from iss.db.engine import DatabaseError
from iss.exec.common import setup_logging, step_engine, step_errors
from iss.visualization.data import ReportError
from iss.visualization.facets import build_facets

log = logging.getLogger("iss.exec.facets")
app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


@app.command()
def main_command(
    all_runs: Optional[bool] = typer.Option(None, "--all-runs/--latest-run",
                                            help="Cluster columns of every run, or of the latest only "
                                                 "(default reports.facets_runs)."),
    mode: Optional[str] = typer.Option(None, "--mode", help="Config mode (default $MODE)."),
) -> None:
    """Build the overview and dive pages of the collection."""
    setup_logging()
    overrides = {"reports": {"facets_runs": "all" if all_runs else "latest"}} if all_runs is not None else None
    with step_errors(log, ReportError, DatabaseError, CacheError):
        cfg = load_config(mode=mode, overrides=overrides)
        log.info("facets: start (config %s)", cfg.source)
        with step_engine(cfg) as engine:
            paths = build_facets(cfg, engine)
    for path in paths:
        typer.echo(str(path))
    log.info("facets: done, open %s (or `make serve_reports`)", paths[1])


def main() -> None:
    app()


if __name__ == "__main__":
    main()
