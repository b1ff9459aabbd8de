"""Cold start of the clustering step: ``python -m iss.exec.exec_clustering`` on 14,000 latents
in fresh processes (``make bench`` calls :func:`main`; alone: ``python -m benchmarks.cold_start``).

Reported (reports/bench/cold_start.json):

- ``first_run_s``: a fresh process with an empty numba cache (what the very first run on a
  machine pays once: umap/pynndescent's numba code is compiled and written to the cache);
- ``cold_s``: a fresh process with the on-disk cache filled — the wall time a user sees on
  every run after the first (median of ``repeats`` runs; all in ``cold_runs_s``);
- ``warm_s``: the same clustering run again inside a process that has already run it once
  (imports done, code compiled): the work itself, the floor for ``cold_s``;
- ``cold_cpu_s``: CPU time (user + system) of the cold runs: what the wall time would be on an
  idle machine with one core; the machine is shared, so wall times swing with its load
  (``load_average`` is recorded);
- ``plain_umap_fresh_process_s``: the same UMAP + k-means done the naive way in a fresh
  process (``import umap``, which brings TensorFlow, numba compiling umap, NN-descent), for
  the ratio ``plain_over_cold``;
- ``n``, ``dim``, and the run's own timing breakdown (fit, metrics, total before DB writes).

The latents are synthetic (288-d, the demo model's latent size, Gaussian clusters with
overlap), written as ``latents.npz`` under a temporary project root with its own SQLite
database and its own numba cache folder, so nothing of the real project is touched.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT, write_report

N, DIM, K = 14_000, 288, 6
MODEL_TYPE, MODEL_NAME = "simple_conv", "bench"

# the same work the naive way: plain `import umap` (TensorFlow comes along), numba compiling
# umap's code in the process, NN-descent neighbours
PLAIN_SCRIPT = """
import sys, time, numpy as np
start = time.perf_counter()
import umap
from sklearn.cluster import KMeans
latents = np.load("{path}")["latents"]
embedding = umap.UMAP(n_neighbors=20, min_dist=0.0, n_components=2, random_state=0).fit_transform(latents)
labels = KMeans(6, n_init=10, random_state=0).fit_predict(embedding)
print("PLAIN", time.perf_counter() - start, "TF", "tensorflow" in sys.modules)
"""

WARM_SCRIPT = """
import time, sys
from iss.config import load_config
from iss.db.engine import get_engine
from iss.clustering.registry import run_clustering
cfg = load_config(); engine = get_engine(cfg.database_url)
run_clustering(cfg, engine, "n2d", "{mt}", "{mn}", version=2)
t = time.perf_counter(); run_clustering(cfg, engine, "n2d", "{mt}", "{mn}", version=2)
print("WARM", time.perf_counter() - t, "TF", "tensorflow" in sys.modules)
"""


def make_latents(root: Path, n: int = N, dim: int = DIM, k: int = K, seed: int = 0) -> Path:
    """Synthetic latents like an autoencoder's: k overlapping Gaussian clusters on a few directions."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, size=(k, 16)) * 3.0
    mixing = rng.normal(0.0, 1.0, size=(16, dim)) / 4.0
    labels = rng.integers(0, k, size=n)
    latents = (centres[labels] + rng.normal(0.0, 1.0, size=(n, 16))) @ mixing + rng.normal(0.0, 0.3, size=(n, dim))
    ids = np.array([f"bench-{i:06d}" for i in range(n)])
    out = root / "data" / "processed" / "latents" / MODEL_TYPE / MODEL_NAME / "latents.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, ids=ids, latents=np.maximum(latents, 0).astype(np.float32))  # ReLU-like, as a conv encoder's
    return out


def _run(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """Run ``cmd`` in a fresh process: (wall seconds, CPU seconds user+sys, output)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout + proc.stderr


def _last_run_timings(root: Path) -> dict:
    import sqlite3

    with sqlite3.connect(root / "data" / "iss_demo.db") as conn:
        metrics = conn.execute("SELECT metrics FROM clustering_runs WHERE clustering_version = 1").fetchone()[0]
    return json.loads(metrics)["timings"]


def main(repeats: int = 3) -> dict:
    """Measure, print and write reports/bench/cold_start.json; returns the figures."""
    with tempfile.TemporaryDirectory(prefix="iss-cold-") as tmp:
        root = Path(tmp)
        latents_file = make_latents(root)
        env = {**os.environ, "MODE": "demo", "ISS_ROOT": str(root), "ISS_NUMBA_CACHE_DIR": str(root / "numba"),
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        env.pop("NUMBA_CACHE_DIR", None)
        env.pop("ISS_CONFIG", None)
        cmd = [sys.executable, "-m", "iss.exec.exec_clustering", "--clustering-type", "n2d", "--model-type",
               MODEL_TYPE, "--model-name", MODEL_NAME, "--version", "1", "--no-reports"]
        first, first_cpu, _ = _run(cmd, env)
        print(f"first run (empty numba cache, compiles once): {first:6.1f} s wall, {first_cpu:6.1f} s CPU", flush=True)
        cold_runs, cold_cpus = [], []
        for i in range(repeats):
            wall, cpu, _ = _run(cmd, env)
            cold_runs.append(wall)
            cold_cpus.append(cpu)
            print(f"fresh process, cache filled, run {i + 1}:       {wall:6.1f} s wall, {cpu:6.1f} s CPU "
                  f"(load average {os.getloadavg()[0]:.1f})", flush=True)
        timings = _last_run_timings(root)
        _, _, out = _run([sys.executable, "-c", WARM_SCRIPT.format(mt=MODEL_TYPE, mn=MODEL_NAME)], env)
        fields = out.split("WARM", 1)[1].split()
        warm, tf_loaded = float(fields[0]), fields[2] == "True"
        # numba's default cache place, as a user has it; run twice so that what pynndescent
        # declares cacheable is cached, and time the second (every run after the first)
        plain_cmd = [sys.executable, "-c", PLAIN_SCRIPT.format(path=latents_file)]
        _run(plain_cmd, env)
        plain, plain_cpu, out = _run(plain_cmd, env)
        print(f"plain umap in a fresh process (import umap, fit, k-means): {plain:6.1f} s wall, "
              f"{plain_cpu:6.1f} s CPU", flush=True)
    cold = statistics.median(cold_runs)
    result = {
        "n": N, "dim": DIM, "cold_s": round(cold, 2), "warm_s": round(warm, 2), "first_run_s": round(first, 2),
        "cold_runs_s": [round(x, 2) for x in cold_runs],
        "cold_cpu_s": round(statistics.median(cold_cpus), 2), "first_run_cpu_s": round(first_cpu, 2),
        "run_breakdown_s": {k: round(v, 2) for k, v in timings.items()},
        "startup_s": round(cold - timings["total_s"], 2),
        "tensorflow_imported": tf_loaded, "target_s": 20.0,
        "plain_umap_fresh_process_s": round(plain, 2), "plain_over_cold": round(plain / cold, 1),
        "load_average": os.getloadavg()[0],
    }
    print(f"n2d on {N} x {DIM} latents: cold (fresh process) {cold:.1f} s ({result['cold_cpu_s']:.1f} s CPU), warm (in-process) {warm:.1f} s, "
          f"first ever {first:.1f} s; target <= 20 s; cold / warm = {cold / warm:.1f}x; "
          f"plain umap in a fresh process {plain:.1f} s = {plain / cold:.1f}x cold; "
          f"breakdown {result['run_breakdown_s']}; TensorFlow imported: {tf_loaded}")
    write_report("cold_start", result)
    return result


if __name__ == "__main__":
    main()
