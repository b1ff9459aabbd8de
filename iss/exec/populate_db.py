"""Step `populate_db`: validate, decode and cache the new pictures; store pictures and locations.

Reads: ``paths.collections`` (pictures), ``paths.history`` and ``paths.tle`` (locations), the
``ingest`` config section, and the database (to skip what is already ingested).
Writes: the ``pictures``, ``pictures_rejected`` and ``pictures_location`` tables and the ingest
cache ``paths.cache`` (every picture at the model input size and the thumbnail size).

    python -m iss.exec.populate_db
    python -m iss.exec.populate_db --workers 4 --batch-size 512
"""

from __future__ import annotations

import logging
from typing import Optional

import typer

from iss.config import load_config
from iss.data.cache import CacheError
from iss.data.ingest import IngestError, populate_db
from iss.data.locations import LocationError
from iss.db.engine import DatabaseError, safe_url
from iss.exec.common import setup_logging, step_engine, step_errors

log = logging.getLogger("iss.exec.populate_db")
app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


@app.command()
def main_command(
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Decoding processes, 0 = all cores "
                                                                          "(default ingest.workers)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Pictures per transaction "
                                                                               "(default ingest.batch_size)."),
    mode: Optional[str] = typer.Option(None, "--mode", help="Config mode (default $MODE)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Ingest new pictures and their locations into the database and the ingest cache."""
    setup_logging()
    overrides = {key: value for key, value in (("workers", workers), ("batch_size", batch_size)) if value is not None}
    with step_errors(log, IngestError, LocationError, CacheError, DatabaseError):
        cfg = load_config(mode=mode, overrides={"ingest": overrides} if overrides else None)
        log.info("populate_db: start (%s -> %s)", cfg.path("collections"), safe_url(cfg.database_url))
        with step_engine(cfg) as engine:
            summary = populate_db(cfg, engine, progress=progress)
    typer.echo(summary.format())
    log.info("populate_db: done, %d pictures decoded at %.0f pictures/s", summary.decoded, summary.pictures_per_s)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
