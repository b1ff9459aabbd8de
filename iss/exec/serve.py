"""Step `serve`: the explorer server (similar-picture search, clusters, pictures, reports) on 127.0.0.1.

Reads: the trained model, its latents and search index (built or updated on start), the ingest
cache, the database and ``paths.reports``.
Writes: the search index folder ``<paths.processed>/search/<model_type>/<model_name>/`` when needed.

    python -m iss.exec.serve                       # http://127.0.0.1:8000/ (search.host / search.port)
    python -m iss.exec.serve --port 8080 --rebuild

The same as ``iss serve``.
"""

from __future__ import annotations

from iss.cli import serve

import typer

app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])
app.command()(serve)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
