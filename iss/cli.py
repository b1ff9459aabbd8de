"""The ``iss`` command: similar-picture search and the explorer server.

    iss similar PICTURE [--k 12] [--json]     nearest collection pictures, or "no good match"
    iss serve [--host 127.0.0.1] [--port 8000] the explorer server (search, clusters, reports)
    iss index [--rebuild]                      build or update the search index
    iss near-duplicates --out pairs.csv        pairs of near-identical pictures
    iss outliers --out outliers.csv [--n 50]   the pictures farthest from everything

Every command reads the config of ``--mode`` (default ``$MODE``) and uses the model
``training.model_type`` / ``training.model_name`` unless ``--model-type`` / ``--model-name``
say otherwise. The search index is built on first use and updated when new pictures were
encoded (``make encode``).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Optional

import typer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n\n")[0])
log = logging.getLogger("iss.cli")

ModelType = typer.Option(None, "--model-type", help="Model type (default training.model_type).")
ModelName = typer.Option(None, "--model-name", help="Model name (default training.model_name).")
Mode = typer.Option(None, "--mode", help="Config mode (default $MODE, else demo).")


def _setup_logging(quiet: bool = False) -> None:
    from iss.exec.common import setup_logging

    setup_logging(logging.WARNING if quiet else logging.INFO)


def _fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=code)


def _known_errors() -> tuple[type[Exception], ...]:
    """The errors the search commands turn into one clear line (bad config, database, cache, index, model)."""
    from iss.config import ConfigError
    from iss.data.cache import CacheError
    from iss.db.engine import DatabaseError
    from iss.models.store import EncodeError
    from iss.search.index import SearchIndexError

    return ConfigError, DatabaseError, CacheError, SearchIndexError, EncodeError


def _service(mode, model_type, model_name, rebuild: bool = False, warm_up: bool = False):
    """Load the search service; known failures become one clear line and exit code 1."""
    from iss.config import load_config
    from iss.search.service import SearchService

    try:
        cfg = load_config(mode=mode)
        return cfg, SearchService.from_config(cfg, model_type=model_type, model_name=model_name, rebuild=rebuild,
                                               warm_up=warm_up)
    except _known_errors() as exc:
        _fail(str(exc))


@app.command()
def similar(
    picture: Path = typer.Argument(..., help="A picture file, from the collection or not."),
    k: int = typer.Option(12, "--k", "-k", min=1, help="Number of results."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON answer of POST /search instead of a table."),
    model_type: Optional[str] = ModelType,
    model_name: Optional[str] = ModelName,
    mode: Optional[str] = Mode,
) -> None:
    """List the collection pictures most similar to PICTURE, with distance, confidence, cluster and time."""
    _setup_logging(quiet=True)
    from iss.search.service import QueryError

    if not picture.is_file():
        _fail(f"{picture}: no such file (expected a picture file)", code=2)
    _, service = _service(mode, model_type, model_name)
    try:
        result = service.search(picture, k=k)
    except QueryError as exc:
        _fail(f"{picture}: {exc.message}", code=2)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        return
    typer.echo(f"{picture} ({result.width}x{result.height}) against {len(service.index)} pictures of "
               f"{service.model.model_type}/{service.model.model_name}")
    typer.echo(f"{'rank':>4}  {'picture':<24} {'distance':>9} {'confidence':>10} {'cluster':>7}  taken at")
    for hit in result.hits:
        cluster = "-" if hit.cluster is None else str(hit.cluster)
        typer.echo(f"{hit.rank:>4}  {hit.pictures_id:<24} {hit.distance:>9.4g} {hit.confidence:>10.1%} "
                   f"{cluster:>7}  {hit.taken_at or '-'}")
    if result.good_match:
        typer.secho("good match" + (" (a copy of a collection picture)" if result.verdict.near_copy else ""),
                    fg=typer.colors.GREEN)
    else:
        typer.secho("no good match:", fg=typer.colors.YELLOW)
        for reason in result.verdict.reasons:
            typer.echo(f"  - {reason}")
    typer.echo(result.confidence_means)


@app.command()
def serve(
    host: Optional[str] = typer.Option(None, "--host", help="Interface to bind (default search.host, 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port (default search.port, 8000)."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Rebuild the search index first."),
    model_type: Optional[str] = ModelType,
    model_name: Optional[str] = ModelName,
    mode: Optional[str] = Mode,
) -> None:
    """Run the explorer server: search by upload, clusters, pictures, near-duplicates, outliers, reports."""
    _setup_logging()
    from iss.config import ConfigError, load_config
    from iss.search.server import serve as run_server

    try:
        cfg = load_config(mode=mode)
    except ConfigError as exc:
        _fail(str(exc))
    log.info("serve: start")
    try:
        run_server(cfg, host=host, port=port, model_type=model_type, model_name=model_name, rebuild=rebuild)
    except _known_errors() as exc:
        _fail(str(exc))
    log.info("serve: done")


@app.command()
def index(
    rebuild: bool = typer.Option(False, "--rebuild", help="Rebuild from scratch even when up to date."),
    model_type: Optional[str] = ModelType,
    model_name: Optional[str] = ModelName,
    mode: Optional[str] = Mode,
) -> None:
    """Build the search index, or add the pictures encoded since it was built."""
    _setup_logging()
    _, service = _service(mode, model_type, model_name, rebuild=rebuild)
    summary = service.health()
    typer.echo(f"search index: {summary['n_index']} pictures, distance threshold {summary['distance_threshold']:.4g}, "
               f"near-copy distance {summary['calibration']['near_copy_distance']:.4g}")


@app.command("near-duplicates")
def near_duplicates(
    out: Path = typer.Option(..., "--out", help="CSV file to write."),
    model_type: Optional[str] = ModelType,
    model_name: Optional[str] = ModelName,
    mode: Optional[str] = Mode,
) -> None:
    """Write the pairs of near-identical pictures (closer than an edited copy is to its original) as CSV."""
    _setup_logging(quiet=True)
    from iss.search.server import NEAR_DUPLICATE_COLUMNS
    from iss.search.service import write_csv

    _, service = _service(mode, model_type, model_name)
    rows = service.near_duplicates()
    write_csv(out, service.to_csv(rows, NEAR_DUPLICATE_COLUMNS))
    typer.echo(f"{len(rows)} near-duplicate pairs (distance <= {service.calibration.near_copy_distance:.4g}) "
               f"-> {out}")


@app.command()
def outliers(
    out: Path = typer.Option(..., "--out", help="CSV file to write."),
    n: int = typer.Option(50, "--n", min=1, help="Number of outliers."),
    model_type: Optional[str] = ModelType,
    model_name: Optional[str] = ModelName,
    mode: Optional[str] = Mode,
) -> None:
    """Write the N pictures farthest from everything (mean distance to their 5 nearest) as CSV."""
    _setup_logging(quiet=True)
    from iss.search.server import OUTLIER_COLUMNS
    from iss.search.service import write_csv

    _, service = _service(mode, model_type, model_name)
    rows = service.outliers(n)
    write_csv(out, service.to_csv(rows, OUTLIER_COLUMNS))
    typer.echo(f"{len(rows)} outliers -> {out}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
