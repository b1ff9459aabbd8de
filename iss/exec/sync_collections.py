"""Step `sync_collections`: copy new or changed pictures, the history file and the labels from the source.

Reads: the ``sync`` config section — ``sync.kind`` (local | rsync | http | none) and
``sync.source`` (a folder, ``user@host:path`` or an ``http(s)://`` URL; default ``paths.source``).
Writes: ``paths.collections`` (pictures), ``paths.history``, ``paths.labels`` (if the source has one).

    python -m iss.exec.sync_collections
    python -m iss.exec.sync_collections --kind rsync --source iss@host:/data/iss
    python -m iss.exec.sync_collections --kind http --source https://example.org/iss/
"""

from __future__ import annotations

import logging
from typing import Optional

import typer

from iss.config import load_config
from iss.data.sync import SyncError, sync_collections
from iss.exec.common import setup_logging, step_errors

log = logging.getLogger("iss.exec.sync_collections")
app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


@app.command()
def main_command(
    kind: Optional[str] = typer.Option(None, "--kind", help="local | rsync | http | none (default sync.kind)."),
    source: Optional[str] = typer.Option(None, "--source", help="Source folder, host:path or URL (default sync.source)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Parallel transfers (default sync.workers)."),
    mode: Optional[str] = typer.Option(None, "--mode", help="Config mode (default $MODE)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Bring new pictures (+ history, labels) from the configured source into data/raw."""
    setup_logging()
    overrides = {key: value for key, value in (("kind", kind), ("source", source), ("workers", workers))
                 if value is not None}
    with step_errors(log, SyncError):
        cfg = load_config(mode=mode, overrides={"sync": overrides} if overrides else None)
        log.info("sync_collections: start (%s from %s)", cfg.get("sync.kind"),
                 cfg.get("sync.source", "") or cfg.get("paths.source"))
        summary = sync_collections(cfg, progress=progress)
    typer.echo(summary.format())
    log.info("sync_collections: done in %.1f s", summary.seconds)
    if summary.failed:
        log.warning("%d file(s) failed; run the step again to retry them", summary.failed)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
