"""iss run as a user runs it, one measured process per step, from a fresh project root
(``bench-peers`` and ``bench-e2e`` use it).

Each step is ``python -m iss.exec.<step>`` with ``ISS_ROOT`` set to a new folder and
``ISS_CONFIG`` to a config file written there: the demo config (``config/config_demo.yaml``)
with the source folder and the keys a user would set for that collection (see
``collection_overrides``). The numba cache stays where a user's is (the project's
``.cache/numba``): every run but the very first on a machine finds UMAP compiled.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import yaml

from benchmarks.common import ROOT
from benchmarks.measure import Measured, run_measured, tail

# step name -> arguments after `python -m`; in data-flow order. PEER_STEPS: folder to clusters
# and the run's report, what the peers are compared with; E2E_STEPS: everything.
STEPS = {
    "sync": ["iss.exec.sync_collections", "--no-progress"],
    "ingest": ["iss.exec.populate_db", "--no-progress"],
    "sampling": ["iss.exec.sampling"],
    "training": ["iss.exec.training"],
    "encode": ["iss.exec.encode"],
    "features": ["iss.exec.features"],
    "clustering": ["iss.exec.exec_clustering", "--no-reports"],
    "reports": ["iss.exec.reports"],
    "facets": ["iss.exec.facets"],
    "posters": ["iss.exec.posters", "--generate", "1"],
}
PEER_STEPS = ["sync", "ingest", "sampling", "training", "encode", "features", "clustering", "reports"]
E2E_STEPS = list(STEPS)


def collection_overrides(source: Path, kind: str, k: int) -> dict:
    """Config keys for a benchmark folder, as a user pointing iss at it would set them.

    Parameters
    ----------
    source : Path
        The folder (``collections/``, ``labels.csv``, maybe ``history/history.txt``).
    kind : {"demo", "npz"}
        ``demo``: generated HDEV frames; the demo config fits them as shipped. ``npz``: 28x28
        grayscale PNGs named ``<set>-<index>``: the model input and thumbnails at their own
        size, no time in the file names, no locations file, and the dense autoencoder
        (``simple``, the N2D paper's kind of model for these sets): the convolutional one
        collapses on them (it learns the all-black picture, MSE stuck at 0.11 from the second
        epoch, ARI 0.08 on MNIST-10k, at 28x28 and at the demo's 48x27 alike), the dense one
        reaches ARI 0.71.
    k : int
        Clusters asked for (the number of known kinds; the demo config already says 6).
    """
    overrides: dict = {"sync": {"source": str(source)},
                       "posters": {"templates_dir": str(ROOT / "config" / "posters")},
                       "clustering": {"n2d": {"n_clusters": k}}}
    if kind == "npz":
        overrides["sync"]["history_file"] = ""
        overrides["ingest"] = {"filename_pattern": "", "input_size": [28, 28], "thumb_size": [28, 28]}
        overrides["training"] = {"model_type": "simple"}
    return overrides


def write_config(root: Path, overrides: dict) -> Path:
    """Write ``<root>/config.yaml``: the demo config with ``overrides`` merged in, every value resolved."""
    from iss.config import load_config

    cfg = load_config(mode="demo", root=root, overrides=overrides)
    path = root / "config.yaml"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg.data, sort_keys=False))
    return path


def step_env(root: Path, config: Path) -> dict:
    """The environment of every step: this one, pointed at ``root`` and ``config``."""
    env = {**os.environ, "MODE": "demo", "ISS_ROOT": str(root), "ISS_CONFIG": str(config),
           "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    env.pop("ISS_SYNC_SOURCE", None)
    return env


def run_steps(root: Path, config: Path, steps: list[str], logs: Path, time_limit_s: float,
              memory_limit_mb: float | None, profile: Path | None = None,
              commands: dict[str, list[str]] | None = None) -> dict[str, Measured]:
    """Run ``steps`` in order, each in a fresh measured process; stop at the first that does not end well.

    Parameters
    ----------
    root, config : Path
        The project root and config file (``write_config``).
    steps : list of str
        Names from ``STEPS``.
    logs : Path
        Folder receiving ``<step>.log``.
    time_limit_s : float
        Limit of all the steps together; each step gets what the ones before it left.
    memory_limit_mb : float, optional
        Cap on the RSS of each step's process tree.
    profile : Path, optional
        Folder receiving ``<step>.txt``, a py-spy sampling profile of every step (collapsed
        stacks, ``--nonblocking``: the process is never paused), when py-spy is installed.
    commands : dict, optional
        ``{step: arguments after python}`` for steps that are not ``python -m`` modules of ``STEPS``.

    Returns
    -------
    dict
        ``{step: Measured}`` for the steps run (the last one may have failed or hit a limit).
    """
    logs.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
    env = step_env(root, config)
    done: dict[str, Measured] = {}
    left = time_limit_s
    for step in steps:
        cmd = [sys.executable, *((commands or {}).get(step) or ["-m", *STEPS[step]])]
        if profile is not None and spy.exists():
            cmd = [str(spy), "record", "--nonblocking", "--subprocesses", "--rate", "20", "--format", "raw",
                   "--output", str(profile / f"{step}.txt"), "--", *cmd]
        print(f"    {step} ...", end=" ", flush=True)
        measured = run_measured(cmd, env=env, cwd=ROOT, time_limit_s=left, memory_limit_mb=memory_limit_mb,
                                log_path=logs / f"{step}.log")
        print(f"{measured.status} {measured.wall_s:.1f} s, {measured.peak_rss_mb:.0f} MB", flush=True)
        done[step] = measured
        left -= measured.wall_s
        if not measured.ok:
            break
    return done


# What the clustering and report steps compile with numba (umap), on a few random latents.
WARM_UP = """
import numpy as np
from iss.clustering import make_clustering
from iss.config import load_config
from iss.visualization.figures import project
latents = np.random.default_rng(0).random((300, 32), dtype=np.float32)
make_clustering("n2d", **load_config().section("clustering.n2d")).fit(latents)
project(latents, "umap")
"""


def warm_numba_cache(root: Path) -> dict:
    """Fill numba's on-disk cache of umap's code, as any earlier iss run on the machine has.

    The very first process on a machine compiles it (30-60 s, once); a user's every later run
    finds it cached. Measured so that this one-off cost is visible, and kept out of the
    figures. A failure is reported, not raised: it only leaves the cache cold.
    """
    config = write_config(root, {})
    measured = run_measured([sys.executable, "-c", WARM_UP], env=step_env(root, config), cwd=ROOT,
                            time_limit_s=600, log_path=root / "warm_up.log")
    record = {"status": measured.status, "wall_s": round(measured.wall_s, 1)}
    if not measured.ok:
        record["log_tail"] = tail(measured.log)
    shutil.rmtree(root, ignore_errors=True)
    return record


def total(steps: dict[str, Measured]) -> dict:
    """One record for a chain of steps: status of the worst, summed times, the highest peaks."""
    last = list(steps.values())[-1]
    return {"status": last.status, "wall_s": round(sum(m.wall_s for m in steps.values()), 1),
            "cpu_s": round(sum(m.cpu_s for m in steps.values()), 1),
            "peak_rss_mb": round(max(m.peak_rss_mb for m in steps.values()), 1),
            "peak_pss_mb": round(max(m.peak_pss_mb for m in steps.values()), 1)}


def latest_run(root: Path, config: Path) -> dict:
    """The latest clustering run in ``root``'s database: ``labels`` (``{picture id: cluster}``) and
    the ``metrics`` it recorded (ARI / NMI / ACC against the known kinds, silhouette)."""
    from sqlalchemy import func, select

    from iss.config import load_config
    from iss.db.engine import get_engine
    from iss.db.schema import clustering_runs, pictures_embedding

    engine = get_engine(load_config(path=config, root=root).database_url)
    try:
        with engine.connect() as conn:
            run_id = conn.execute(select(func.max(clustering_runs.c.run_id))).scalar_one()
            metrics = conn.execute(select(clustering_runs.c.metrics).where(clustering_runs.c.run_id == run_id)).scalar()
            rows = conn.execute(select(pictures_embedding.c.pictures_id, pictures_embedding.c.label)
                                .where(pictures_embedding.c.run_id == run_id)).all()
    finally:
        engine.dispose()
    return {"labels": {pid: int(label) for pid, label in rows},
            "metrics": {k: round(v, 4) for k, v in (metrics or {}).items() if k in ("ari", "nmi", "acc", "silhouette")}}
