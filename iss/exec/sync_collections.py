"""Step `sync_collections`: copy new or changed pictures, the history file and the labels from the source.

Reads: the ``sync`` config section — ``sync.kind`` (local | rsync | http | none) and
``sync.source`` (a folder, ``user@host:path`` or an ``http(s)://`` URL; default ``paths.source``).
Writes: ``paths.collections`` (pictures), ``paths.history``, ``paths.labels`` (if the source has one).

    iss sync-collections              # = make sync_collections = python -m iss.exec.sync_collections
    iss sync-collections --kind rsync --source iss@host:/data/iss
    iss sync-collections --kind http --source https://example.org/iss/
"""

from __future__ import annotations

import logging
from typing import Optional

import typer

from iss.exec.common import ModeOption, SetOption, setup_logging, step_app, step_config, step_errors

log = logging.getLogger("iss.exec.sync_collections")
app = step_app(__doc__)


@app.command()
def sync_collections(
    kind: Optional[str] = typer.Option(None, "--kind", help="local | rsync | http | none (default sync.kind)."),
    source: Optional[str] = typer.Option(None, "--source", help="Source folder, host:path or URL (default sync.source)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Parallel transfers (default sync.workers)."),
    mode: Optional[str] = ModeOption,
    settings: Optional[list[str]] = SetOption,
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Bring new pictures (+ history, labels) from the configured source into data/raw."""
    setup_logging()
    from iss.data.sync import SyncError, sync_collections as run_sync

    overrides = {key: value for key, value in (("kind", kind), ("source", source), ("workers", workers))
                 if value is not None}
    with step_errors(log, SyncError):
        cfg = step_config(mode, settings, {"sync": overrides} if overrides else None)
        log.info("sync_collections: start (%s from %s)", cfg.get("sync.kind"),
                 cfg.get("sync.source") or cfg.get("paths.source"))
        summary = run_sync(cfg, progress=progress)
    typer.echo(summary.format())
    log.info("sync_collections: done in %.1f s", summary.seconds)
    if summary.failed:
        log.warning("%d file(s) failed; run the step again to retry them", summary.failed)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
