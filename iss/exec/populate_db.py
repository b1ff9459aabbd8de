"""Step `populate_db`: validate, decode and cache the new pictures; store pictures and locations.

Reads: ``paths.collections`` (pictures), ``paths.history`` and ``paths.tle`` (locations), the
``ingest`` config section, and the database (to skip what is already ingested).
Writes: the ``pictures``, ``pictures_rejected`` and ``pictures_location`` tables and the ingest
cache ``paths.cache`` (every picture at the model input size and the thumbnail size).

    iss populate-db                   # = make populate_db = python -m iss.exec.populate_db
    iss populate-db --workers 4 --batch-size 512
    iss populate-db --scheduler local           # decode on a LocalCluster (Dask)
    iss populate-db --scheduler tcp://host:8786 # ... or on a Dask cluster (see README "Compute")
"""

from __future__ import annotations

import logging
from typing import Optional

import typer

from iss.exec.common import (
    ModeOption,
    SchedulerOption,
    SetOption,
    scheduler_override,
    setup_logging,
    step_app,
    step_config,
    step_engine,
    step_errors,
)

log = logging.getLogger("iss.exec.populate_db")
app = step_app(__doc__)


@app.command()
def populate_db(
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Decoding processes, 0 = all cores "
                                                                          "(default ingest.workers)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Pictures per transaction "
                                                                               "(default ingest.batch_size)."),
    scheduler: Optional[str] = SchedulerOption,
    mode: Optional[str] = ModeOption,
    settings: Optional[list[str]] = SetOption,
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Ingest new pictures and their locations into the database and the ingest cache."""
    setup_logging()
    from iss.compute import ComputeError
    from iss.data.cache import CacheError
    from iss.data.ingest import IngestError, populate_db as run_ingest
    from iss.data.locations import LocationError
    from iss.db.engine import DatabaseError, safe_url

    overrides = {key: value for key, value in (("workers", workers), ("batch_size", batch_size)) if value is not None}
    with step_errors(log, IngestError, LocationError, CacheError, DatabaseError, ComputeError):
        cfg = step_config(mode, settings, {**({"ingest": overrides} if overrides else {}),
                                           **scheduler_override(scheduler)} or None)
        log.info("populate_db: start (%s -> %s)", cfg.path("collections"), safe_url(cfg.database_url))
        with step_engine(cfg) as engine:
            summary = run_ingest(cfg, engine, progress=progress)
    typer.echo(summary.format())
    log.info("populate_db: done, %d pictures decoded at %.0f pictures/s", summary.decoded, summary.pictures_per_s)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
