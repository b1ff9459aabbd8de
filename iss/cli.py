"""The iss command: every pipeline step, the explorer server, similar-picture search and the collection's lists.

    iss demo                                   the whole pipeline on a generated collection
    iss generate-demo | sync-collections | populate-db | sampling | training | encode |
        features | exec-clustering | reports | facets | posters   one pipeline step each (= make <step>)
    iss name-cluster RUN LABEL "city lights"   rename a cluster (pages are refreshed)
    iss similar PICTURE [--k 12] [--json]      nearest collection pictures, or "no good match"
    iss serve [--host 127.0.0.1] [--port 8000] the explorer server (search, pictures, clusters, reports)
    iss index [--rebuild]                      build or update the search index
    iss near-duplicates [--out sets.csv]       sets of near-identical pictures, largest first
    iss outliers [--out outliers.csv] [--n 50] the pictures least like the rest

Every command reads the config of ``--mode`` (default ``$MODE``); step commands take
``--set KEY=VALUE`` to override any config key. The search commands use the model
``training.model_type`` / ``training.model_name`` unless ``--model-type`` / ``--model-name``
say otherwise. The search index is built on first use and updated when new pictures were
encoded (``iss encode``).

This module stays light (``iss similar`` must start fast): each command imports its library code
(TensorFlow, UMAP, bokeh...) inside its function, and the step modules do the same.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Optional

import typer

from iss.exec.common import (ModelNameOption, ModelTypeOption, ModeOption, SchedulerOption, fail, plain_help,
                              scheduler_override, search_errors)
from iss.exec.serve import serve

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
app = typer.Typer(add_completion=False, no_args_is_help=True, help=plain_help(__doc__))
log = logging.getLogger("iss.cli")


def _setup_logging(quiet: bool = False) -> None:
    from iss.exec.common import setup_logging

    setup_logging(logging.WARNING if quiet else logging.INFO)


def _service(mode, model_type, model_name, rebuild: bool = False, warm_up: bool = False, overrides=None):
    """Load the search service; known failures become one clear line and exit code 1."""
    from iss.config import load_config
    from iss.search.service import SearchService

    try:
        cfg = load_config(mode=mode, overrides=overrides or None)
        return cfg, SearchService.from_config(cfg, model_type=model_type, model_name=model_name, rebuild=rebuild,
                                               warm_up=warm_up)
    except search_errors() as exc:
        fail(str(exc))


@app.command()
def similar(
    picture: Path = typer.Argument(..., help="A picture file, from the collection or not."),
    k: int = typer.Option(12, "--k", "-k", min=1, help="Number of results."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON answer of POST /search instead of a table."),
    model_type: Optional[str] = ModelTypeOption,
    model_name: Optional[str] = ModelNameOption,
    mode: Optional[str] = ModeOption,
) -> None:
    """List the collection pictures most similar to PICTURE, with distance, confidence, cluster and time."""
    _setup_logging(quiet=True)
    from iss.search.service import QueryError

    if not picture.is_file():
        fail(f"{picture}: no such file (expected a picture file)", code=2)
    _, service = _service(mode, model_type, model_name)
    try:
        result = service.search(picture, k=k)
    except QueryError as exc:
        fail(f"{picture}: {exc.message}", code=2)
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


app.command()(serve)  # the explorer server: the same command as `python -m iss.exec.serve`


@app.command()
def index(
    rebuild: bool = typer.Option(False, "--rebuild", help="Rebuild from scratch even when up to date."),
    model_type: Optional[str] = ModelTypeOption,
    model_name: Optional[str] = ModelNameOption,
    mode: Optional[str] = ModeOption,
    scheduler: Optional[str] = SchedulerOption,
) -> None:
    """Build the search index, or add the pictures encoded since it was built.

    Above search.approximate_above pictures, --scheduler other than auto builds its HNSW graph as Dask
    tasks, one per shard of search.shard_size pictures (README "Search at scale")."""
    _setup_logging()
    _, service = _service(mode, model_type, model_name, rebuild=rebuild, overrides=scheduler_override(scheduler))
    summary = service.health()
    typer.echo(f"search index: {summary['n_index']} pictures, distance threshold {summary['distance_threshold']:.4g}, "
               f"near-copy distance {summary['calibration']['near_copy_distance']:.4g}")


@app.command("near-duplicates")
def near_duplicates(
    out: Optional[Path] = typer.Option(None, "--out", help="Write the keep-one CSV here (every picture of every set, "
                                                           "keep = yes for the one to keep) instead of printing."),
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="Also write the near-duplicate pairs as CSV."),
    limit: int = typer.Option(20, "--limit", min=1, help="Sets printed (largest first)."),
    model_type: Optional[str] = ModelTypeOption,
    model_name: Optional[str] = ModelNameOption,
    mode: Optional[str] = ModeOption,
) -> None:
    """Sets of near-identical pictures (closer than an edited copy is to its original), largest first, and the one to keep."""
    _setup_logging(quiet=True)
    from iss.search.server import KEEP_ONE_COLUMNS, NEAR_DUPLICATE_COLUMNS, keep_one_rows
    from iss.search.service import write_csv

    _, service = _service(mode, model_type, model_name)
    sets = service.near_duplicate_sets()
    n_pictures = sum(s["size"] for s in sets)
    typer.echo(f"{len(sets)} sets of near-duplicates, {n_pictures} pictures; keeping one per set frees "
               f"{n_pictures - len(sets)} (latent distance <= {service.calibration.near_duplicate_distance:.4g} and "
               f"thumbnail correlation >= {service.calibration.near_copy_correlation:.3g})")
    if pairs:
        write_csv(pairs, service.to_csv(service.near_duplicates(), NEAR_DUPLICATE_COLUMNS))
        typer.echo(f"pairs -> {pairs}")
    if out:
        write_csv(out, service.to_csv(keep_one_rows(sets), KEEP_ONE_COLUMNS))
        typer.echo(f"keep-one list -> {out}")
        return
    for s in sets[:limit]:
        others = [p["pictures_id"] for p in s["pictures"] if not p["keep"]]
        shown = ", ".join(others[:8]) + (f", ... ({len(others) - 8} more)" if len(others) > 8 else "")
        typer.echo(f"set {s['set']:>3}  {s['size']:>4} pictures  keep {s['keep']}  drop {shown}")
    if len(sets) > limit:
        typer.echo(f"... {len(sets) - limit} more sets (--limit, or --out sets.csv for all)")


@app.command()
def outliers(
    out: Optional[Path] = typer.Option(None, "--out", help="Write them as CSV here instead of printing."),
    n: int = typer.Option(50, "--n", min=1, help="Number of outliers."),
    model_type: Optional[str] = ModelTypeOption,
    model_name: Optional[str] = ModelNameOption,
    mode: Optional[str] = ModeOption,
) -> None:
    """The N pictures least like the rest (unusual layout, light from top to bottom or colours), oddest first."""
    _setup_logging(quiet=True)
    from iss.search.server import OUTLIER_COLUMNS
    from iss.search.service import write_csv

    _, service = _service(mode, model_type, model_name)
    rows = service.outliers(n)
    if out:
        write_csv(out, service.to_csv(rows, OUTLIER_COLUMNS))
        typer.echo(f"{len(rows)} outliers -> {out}")
        return
    typer.echo(f"{'rank':>4}  {'picture':<24} {'score':>6}  {'cluster':>7}  {'taken at':<19}  why")
    for row in rows:
        cluster = "-" if row["cluster"] is None else str(row["cluster"])
        typer.echo(f"{row['rank']:>4}  {row['pictures_id']:<24} {row['score']:>6.1f}  {cluster:>7}  "
                   f"{row['taken_at'] or '-':<19}  {row['reason']}")


@app.command("name-cluster")
def name_cluster(
    run_id: int = typer.Argument(..., help="Clustering run (its number on the run page)."),
    label: int = typer.Argument(..., help="Cluster number in that run."),
    name: str = typer.Argument("", help="The new name; empty to go back to the automatic description."),
    refresh: bool = typer.Option(True, "--refresh/--no-refresh",
                                 help="Rewrite the run page, scatter, mosaics and dive with the new name."),
    mode: Optional[str] = ModeOption,
) -> None:
    """Name a cluster (stored in the database; shown on every page, usable in poster rules)."""
    _setup_logging(quiet=True)
    from iss.clustering.names import ClusterNameError
    from iss.clustering.names import name_cluster as store_name
    from iss.config import ConfigError, load_config
    from iss.data.cache import CacheError, ImageCache
    from iss.db.engine import DatabaseError, get_engine
    from iss.visualization.data import ReportError

    try:
        cfg = load_config(mode=mode)
        engine = get_engine(cfg.database_url)
        try:
            names = store_name(ImageCache(cfg.path("cache")), engine, run_id, label, name)
            for k, info in names.items():
                mark = "*" if k == label else " "
                typer.echo(f"{mark} {k:>4}  {info['name']}" + (f"   (described as: {info['auto_name']})"
                                                                  if info["given"] else ""))
            if refresh:
                from iss.visualization.reports import refresh_cluster_names

                for path in refresh_cluster_names(cfg, engine, run_id):
                    typer.echo(f"rewritten {path}")
        finally:
            engine.dispose()
    except (ClusterNameError, ConfigError, DatabaseError, CacheError, ReportError) as exc:
        fail(str(exc))


# --- the pipeline steps: the very functions of `python -m iss.exec.<step>` and `make <step>` ----------------
def _register_steps() -> None:
    """Add one command per pipeline step, in data-flow order (the step modules import only typer and config)."""
    from iss.exec import (
        demo,
        encode,
        exec_clustering,
        facets,
        features,
        generate_demo,
        populate_db,
        posters,
        reports,
        sampling,
        sync_collections,
        training,
    )

    for module, function in ((demo, demo.demo), (generate_demo, generate_demo.generate_demo),
                             (sync_collections, sync_collections.sync_collections),
                             (populate_db, populate_db.populate_db), (sampling, sampling.sampling),
                             (training, training.training), (encode, encode.encode),
                             (features, features.features), (exec_clustering, exec_clustering.exec_clustering), (reports, reports.reports),
                             (facets, facets.facets), (posters, posters.posters)):
        name = module.__name__.rsplit(".", 1)[1].replace("_", "-")
        app.command(name, help=plain_help(module.__doc__), short_help=plain_help(function.__doc__),
                    rich_help_panel="Pipeline steps")(function)


_register_steps()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
