"""Step `facets`: explore the whole collection in a browser, offline.

Reads: the database (every picture with its location and split, and the embedding and cluster
names of the latest clustering run, or of every run with ``reports.facets_runs: all``) and the
ingest cache's thumbnails.
Writes: ``paths.reports/facets_overview.html`` (statistics of every column, by split),
``paths.reports/facets_dive.html`` + ``facets_sprite.jpg`` (every picture, binnable, colourable
and filterable by any column), ``paths.reports/thumbs/<id>.jpg``, ``paths.reports/index.html`` and
the run pages' links to these.

    iss facets                        # = make facets = python -m iss.exec.facets
    iss facets --all-runs
"""

from __future__ import annotations

import logging
from typing import Optional

import typer

from iss.exec.common import ModeOption, SetOption, setup_logging, step_app, step_config, step_engine, step_errors

log = logging.getLogger("iss.exec.facets")
app = step_app(__doc__)


@app.command()
def facets(
    all_runs: Optional[bool] = typer.Option(None, "--all-runs/--latest-run",
                                            help="Cluster columns of every run, or of the latest only "
                                                 "(default reports.facets_runs)."),
    mode: Optional[str] = ModeOption,
    settings: Optional[list[str]] = SetOption,
) -> None:
    """Build the overview and dive pages of the collection."""
    setup_logging()
    from iss.data.cache import CacheError
    from iss.db.engine import DatabaseError
    from iss.visualization.data import ReportError
    from iss.visualization.facets import build_facets

    overrides = {"reports": {"facets_runs": "all" if all_runs else "latest"}} if all_runs is not None else None
    with step_errors(log, ReportError, DatabaseError, CacheError):
        cfg = step_config(mode, settings, overrides)
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
