"""Step `reports`: (re-)render a clustering run's reports.

Reads: the run's ``clustering_runs`` and ``pictures_embedding`` rows (+ pictures, locations,
splits, cluster names), the ingest cache's thumbnails, the run's latents (``paths.latents``) and,
for ``classical``, its fitted clustering (``clustering_runs.path``, for the dendrogram).
Writes: ``paths.reports/run-<id>-<type>-<model>-v<version>/`` (index.html, scatter.html,
silhouettes.png, overview.png, mosaics/, dendrogram.png, projection_*.png),
``paths.reports/thumbs/``, ``paths.reports/index.html`` and the automatic cluster names
(``cluster_names``) when the run has none yet.

    iss reports                       # = make reports = python -m iss.exec.reports; the latest run
    iss reports --run-id 3
    iss reports --all
"""

from __future__ import annotations

import logging
from typing import Optional

import typer

from iss.exec.common import ModeOption, SetOption, setup_logging, step_app, step_config, step_engine, step_errors

log = logging.getLogger("iss.exec.reports")
app = step_app(__doc__)


@app.command()
def reports(
    run_id: Optional[int] = typer.Option(None, "--run-id", help="Clustering run (default: the latest)."),
    all_runs: bool = typer.Option(False, "--all", help="Render every run."),
    mode: Optional[str] = ModeOption,
    settings: Optional[list[str]] = SetOption,
) -> None:
    """Render the scatter, silhouettes, mosaics, dendrogram, projections and index of a run."""
    setup_logging()
    from iss.data.cache import CacheError
    from iss.db.engine import DatabaseError
    from iss.visualization.data import ReportError, list_runs
    from iss.visualization.reports import render_run_reports

    with step_errors(log, ReportError, DatabaseError, CacheError):
        cfg = step_config(mode, settings)
        with step_engine(cfg) as engine:
            run_ids = [r["run_id"] for r in list_runs(engine)] if all_runs else [run_id]
            log.info("reports: start (runs %s)", "latest" if run_ids == [None] else run_ids)
            for rid in run_ids:
                typer.echo(str(render_run_reports(cfg, engine, rid)))
    log.info("reports: done")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
