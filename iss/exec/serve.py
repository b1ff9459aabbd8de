"""Step `serve`: the explorer server (similar-picture search, clusters, pictures, reports) on 127.0.0.1.

Reads: the trained model, its latents and search index (built or updated on start), the ingest
cache, the database and ``paths.reports``.
Writes: the search index folder ``<paths.processed>/search/<model_type>/<model_name>/`` when needed.

    iss serve                       # = make serve; http://127.0.0.1:8000/ (search.host / search.port)
    iss serve --port 8080 --rebuild

The same as ``iss serve``.
"""

from __future__ import annotations

from iss.cli import serve
from iss.exec.common import step_app

app = step_app(__doc__)
app.command()(serve)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
