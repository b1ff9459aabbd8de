"""Step `serve`: the explorer server (similar-picture search, clusters, pictures, reports) on 127.0.0.1.

Reads: the trained model, its latents and search index (built or updated on start), the ingest
cache, the database and ``paths.reports``.
Writes: the search index folder ``<paths.processed>/search/<model_type>/<model_name>/`` when needed.

    iss serve                       # = make serve; http://127.0.0.1:8000/ (search.host / search.port)
    iss serve --port 8080 --rebuild

The same as ``iss serve``.
"""

from __future__ import annotations

import logging
from typing import Optional

import typer

from iss.exec.common import ModelNameOption, ModelTypeOption, ModeOption, fail, search_errors, setup_logging, step_app

log = logging.getLogger(__name__)


def serve(
    host: Optional[str] = typer.Option(None, "--host", help="Interface to bind (default search.host, 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port (default search.port, 8000)."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Rebuild the search index first."),
    model_type: Optional[str] = ModelTypeOption,
    model_name: Optional[str] = ModelNameOption,
    mode: Optional[str] = ModeOption,
) -> None:
    """Run the explorer server: search by upload, clusters, pictures, near-duplicates, outliers, reports."""
    setup_logging()
    from iss.config import ConfigError, load_config
    from iss.search.server import serve as run_server

    try:
        cfg = load_config(mode=mode)
    except ConfigError as exc:
        fail(str(exc))
    log.info("serve: start")
    try:
        run_server(cfg, host=host, port=port, model_type=model_type, model_name=model_name, rebuild=rebuild)
    except search_errors() as exc:
        fail(str(exc))
    log.info("serve: done")


app = step_app(__doc__)
app.command()(serve)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
