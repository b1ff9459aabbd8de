"""The whole data flow in one place: every step in order, as the demo runs it.

Each step is the library function behind one ``iss.exec.<step>`` module and one Makefile
target; this module only chains them, times them and says where the results are.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from iss.config import Config
from iss.db.engine import get_engine

log = logging.getLogger(__name__)


@dataclass
class PipelineResult:
    """What a pipeline run produced: where to look, and how long each step took."""

    database_url: str
    run_id: int | None = None
    report_index: Path | None = None
    facets: list[Path] = field(default_factory=list)
    posters: list[Path] = field(default_factory=list)
    model_dir: Path | None = None
    features: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    sync: object = None  # SyncSummary: what was copied, and every entry not copied with its reason
    ingest: object = None  # IngestSummary: pictures ingested, and every file not ingested with its reason


def _timed(result: PipelineResult, name: str, step: Callable):
    log.info("step %s: start", name)
    start = time.perf_counter()
    value = step()
    result.seconds[name] = round(time.perf_counter() - start, 2)
    log.info("step %s: done in %.1f s", name, result.seconds[name])
    return value


def generate_demo(cfg: Config, progress: bool = True):
    """Generate the demo collection into ``paths.source`` (``demo.n_frames``, ``demo.seed``), plus, with
    ``demo.odd_frames`` (true in demo mode), a test pattern, a lens reflection and a half-black frame
    (:mod:`iss.data.odd_frames`) for the outlier list to find.

    Returns
    -------
    iss.data.demo.DemoSummary
    """
    from iss.data.demo import generate_collection

    n, seed = int(cfg.get("demo.n_frames")), int(cfg.get("demo.seed"))
    summary = generate_collection(cfg.path("source"), n=n, seed=seed, progress=progress)
    if cfg.get("demo.odd_frames"):
        from iss.data.odd_frames import add_odd_frames

        odd = add_odd_frames(cfg.path("source"), n=n, seed=seed)
        log.info("added %d odd frames for the outlier list: %s", len(odd), ", ".join(f"{i} ({k})" for i, k in odd))
    return summary


def run_pipeline(cfg: Config, generate: bool = True, progress: bool = True) -> PipelineResult:
    """Run every step on the configured collection.

    Parameters
    ----------
    cfg : Config
    generate : bool, default=True
        First generate the synthetic demo collection into ``paths.source`` (``demo.*`` keys).
    progress : bool, default=True
        Show progress bars.

    Returns
    -------
    PipelineResult
    """
    from iss.clustering.registry import run_clustering
    from iss.data.ingest import populate_db
    from iss.data.sampling import sample_splits
    from iss.data.sync import sync_collections
    from iss.features import build_features
    from iss.models.encode import encode_collection
    from iss.models.training import train_model
    from iss.posters.render import generate_posters
    from iss.visualization.facets import build_facets
    from iss.visualization.reports import render_run_reports

    result = PipelineResult(database_url=cfg.database_url)
    if generate:
        _timed(result, "generate_demo", lambda: generate_demo(cfg, progress=progress))
    engine = get_engine(cfg.database_url)
    model_type, model_name = cfg.get("training.model_type"), cfg.get("training.model_name")
    clustering_type = cfg.get("clustering.default")

    result.sync = _timed(result, "sync_collections", lambda: sync_collections(cfg, progress=progress))
    result.ingest = _timed(result, "populate_db", lambda: populate_db(cfg, engine, progress=progress))
    _timed(result, "sampling", lambda: sample_splits(cfg, engine))
    trained = _timed(result, "training", lambda: train_model(cfg, engine, model_type, model_name))
    result.model_dir = getattr(trained, "model_dir", None)
    _timed(result, "encode", lambda: encode_collection(cfg, engine, model_type, model_name))
    result.features = _timed(result, "features", lambda: build_features(cfg, None, model_type, model_name)).record
    result.run_id = _timed(result, "exec_clustering",
                           lambda: run_clustering(cfg, engine, clustering_type, model_type, model_name))
    result.report_index = _timed(result, "reports", lambda: render_run_reports(cfg, engine, result.run_id))
    result.facets = _timed(result, "facets", lambda: build_facets(cfg, engine))
    result.posters = _timed(result, "posters", lambda: generate_posters(
        cfg, engine, cfg.get("posters.default_template"), n=1, poster_id="demo", seed=0))
    result.metrics = run_metrics(engine, result.run_id)
    engine.dispose()
    return result


def run_metrics(engine, run_id: int) -> dict:
    """The metrics recorded for a clustering run."""
    from sqlalchemy import select

    from iss.db.schema import clustering_runs
    with engine.connect() as conn:
        row = conn.execute(select(clustering_runs.c.metrics).where(clustering_runs.c.run_id == run_id)).one()
    return dict(row.metrics or {})


def summary(result: PipelineResult) -> str:
    """A human-readable account of where the results are."""
    lines = ["", "Smart ISS Posts: pipeline finished.", f"  database       {result.database_url}"]
    if result.model_dir:
        lines.append(f"  model          {result.model_dir}")
    if result.report_index:
        lines.append(f"  run report     {result.report_index}   (open in a browser)")
    for path in result.facets:
        lines.append(f"  explorer       {path}")
    for path in result.posters:
        lines.append(f"  poster         {path}")
    if result.ingest is not None:
        not_read = sum(result.ingest.rejected.values()) + len(result.ingest.skipped_files) + result.ingest.known_rejected
        lines.append(f"  not ingested   {not_read} files, each with its reason: {result.ingest.skipped_csv}")
    auto = result.features.get("auto")
    if auto:
        lines.append(f"  features       {auto['chosen']}: {auto['reason']}")
    for key in ("n_clusters", "ari", "nmi", "acc", "silhouette"):
        if key in result.metrics:
            lines.append(f"  {key:<14} {result.metrics[key]:.3f}" if key != "n_clusters"
                         else f"  {key:<14} {result.metrics[key]}")
    lines.append("  step seconds   " + ", ".join(f"{k} {v:.0f}" for k, v in result.seconds.items()))
    return "\n".join(lines)
