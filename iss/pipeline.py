"""The whole data flow in one place: every step in order, as the demo runs it.

:data:`STEPS` lists each step with the artefacts it reads and writes (names of the catalog,
:data:`iss.artefacts.ARTEFACTS`, which gives each one's path, writer and reader). Each step is the
library function behind one ``iss.exec.<step>`` module and one Makefile target; this module only
chains them, times them and says where the results are.
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


@dataclass
class _Run:
    """What the steps of one pipeline run share."""

    cfg: Config
    engine: object
    result: PipelineResult
    progress: bool

    @property
    def model(self) -> tuple[str, str]:
        return self.cfg.get("training.model_type"), self.cfg.get("training.model_name")


def _sync(run: _Run):
    from iss.data.sync import sync_collections

    run.result.sync = sync_collections(run.cfg, progress=run.progress)


def _populate_db(run: _Run):
    from iss.data.ingest import populate_db

    run.result.ingest = populate_db(run.cfg, run.engine, progress=run.progress)


def _sampling(run: _Run):
    from iss.data.sampling import sample_splits

    sample_splits(run.cfg, run.engine)


def _training(run: _Run):
    from iss.models.training import train_model

    run.result.model_dir = getattr(train_model(run.cfg, run.engine, *run.model), "model_dir", None)


def _encode(run: _Run):
    from iss.models.encode import encode_collection

    encode_collection(run.cfg, run.engine, *run.model)


def _features(run: _Run):
    from iss.features import build_features

    run.result.features = build_features(run.cfg, None, *run.model).record


def _clustering(run: _Run):
    from iss.clustering.registry import run_clustering

    run.result.run_id = run_clustering(run.cfg, run.engine, run.cfg.get("clustering.default"), *run.model)


def _reports(run: _Run):
    from iss.visualization.reports import render_run_reports

    run.result.report_index = render_run_reports(run.cfg, run.engine, run.result.run_id)


def _facets(run: _Run):
    from iss.visualization.facets import build_facets

    run.result.facets = build_facets(run.cfg, run.engine)


def _posters(run: _Run):
    from iss.posters.render import generate_posters

    run.result.posters = generate_posters(run.cfg, run.engine, run.cfg.get("posters.default_template"), n=1,
                                          poster_id="demo", seed=0)


@dataclass(frozen=True)
class Step:
    """One step of the data flow: the artefacts (:data:`iss.artefacts.ARTEFACTS`) it reads and writes."""

    name: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    run: Callable[[_Run], None]


# The data flow, in order. Each name is an iss.exec.<step> module and a Makefile target.
STEPS: tuple[Step, ...] = (
    Step("generate_demo", reads=(), writes=("source",),
         run=lambda run: generate_demo(run.cfg, progress=run.progress)),
    Step("sync_collections", reads=("source",), writes=("collection",), run=_sync),
    Step("populate_db", reads=("collection",), writes=("cache", "pictures"), run=_populate_db),
    Step("sampling", reads=("pictures",), writes=("splits",), run=_sampling),
    Step("training", reads=("cache", "splits"), writes=("model",), run=_training),
    Step("encode", reads=("model", "cache"), writes=("latents",), run=_encode),
    Step("features", reads=("latents", "cache"), writes=("features",), run=_features),
    Step("exec_clustering", reads=("latents", "features"), writes=("clustering", "runs"), run=_clustering),
    Step("reports", reads=("runs", "clustering", "latents", "features", "cache"), writes=("reports",),
         run=_reports),
    Step("facets", reads=("pictures", "runs", "cache"), writes=("facets",), run=_facets),
    Step("posters", reads=("pictures", "runs", "collection"), writes=("posters",), run=_posters),
)


def data_flow() -> list[str]:
    """The data flow as text, one ``step: reads -> writes`` line per step."""
    return [f"{s.name}: {', '.join(s.reads) or '-'} -> {', '.join(s.writes)}" for s in STEPS]


def run_pipeline(cfg: Config, generate: bool = True, progress: bool = True) -> PipelineResult:
    """Run every step of :data:`STEPS` on the configured collection.

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
    result = PipelineResult(database_url=cfg.database_url)
    run = _Run(cfg, None, result, progress)
    for step in STEPS:
        if step.name == "generate_demo" and not generate:
            continue
        if run.engine is None and step.name != "generate_demo":
            run.engine = get_engine(cfg.database_url)
        _timed(result, step.name, lambda: step.run(run))
    result.metrics = run_metrics(run.engine, result.run_id)
    run.engine.dispose()
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
