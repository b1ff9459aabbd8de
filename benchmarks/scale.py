"""How the partitioned steps scale with Dask workers: pictures/s with 1 and 2 workers, the scaling
efficiency and the peak memory of each worker, at 10k, 100k (and 1M) pictures.

    make bench-scale                                  # 10k, 100k, 10k full-size, each twice (about 12 minutes here)
    make bench-scale SCALE_ARGS='--sizes 10000 100000 1000000'   # about 80 minutes (40 with --repeat 1)
    python -m benchmarks.scale --sizes 2000 --full-size 0        # a quick check of the harness

The collection (``scale_folder``, made once and cached under ``data/bench/``): ``n`` distinct
160x90 JPEG frames in sub-folders of 10,000. 1M frames at 1280x720 do not fit this disk, and
rendering a million demo frames takes hours, so ``BASE_FRAMES`` demo frames are rendered at
160x90 and every file is one of them with its own brightness offset and a patch of seeded noise,
re-encoded. Every file therefore decodes to different pixels and every latent is distinct: no
duplicate short-cuts the ingest, the encode or the prediction (the clustering assigns each
distinct row once).

Ingest is also measured on full-size frames (``--full-size N``, default ``FULL_SIZE_N``;
``scale_folder(n, full_size=True)``): variants, made the same way, of the 30 real 1280x720 ISS
frames of ``shared/real/iss_frames``, re-encoded at ``FULL_SIZE_QUALITY`` so that a file weighs
what a real frame does (~170 KB). A 160x90 file decodes in under 0.1 ms, so its ingest measures the
per-picture bookkeeping (rows, cache) more than the decoding; a real frame costs a worker ~2.3 ms
(decoding at 1/8 scale, resizing, the store write), which is where a real collection's ingest
spends its time. Encode and
prediction read the ingest cache, whose rows do not depend on the source size, so they are
measured on the small frames only.

For each size and each worker count W (1, 2): a ``dask scheduler`` and W single-threaded ``dask
worker`` processes (no nanny) are started on 127.0.0.1, as on a cluster, and warmed up (their
imports of TensorFlow, umap and the steps' modules, a one-off of a long-lived worker, timed apart as
``worker_warmup_s``); then the steps run with ``compute.scheduler`` set to that address:

- ``ingest``: :func:`iss.data.ingest.populate_db` from an empty database and cache;
- ``encode``: :func:`iss.models.encode.encode_collection` of every picture, with an untrained
  ``simple_conv`` encoder of the demo's shape (the weights do not change the cost; training is
  not a partitioned step);
- ``predict``: :func:`iss.clustering.registry.run_clustering` (n2d, k=6) fitted on
  ``FIT_SAMPLE`` pictures in this process, then the rest assigned as Dask tasks; the figure is
  the prediction alone (the run's ``timings.predict_s``).

``--full N`` also runs every step on N pictures as a user runs it (``python -m iss.exec.<step>``
in a fresh measured process each, ``benchmarks.iss_run``; ``compute.scheduler: auto``): ingest,
sampling, training (``FULL_EPOCHS`` epochs: the cost of an epoch is what is measured), encode,
features, clustering (fitted on ``FULL_FIT_SAMPLE`` pictures, the rest predicted), the search
index (``iss.search.build.sync_index``), the run's reports and the facets. Each step's wall time,
CPU time and peak memory of its process tree go to ``full_run`` in the report.

Per step and W: seconds, pictures/s, the peak resident memory of each worker process during the
step (psutil, polled every 0.2 s) and the CPU seconds of the workers, the scheduler and this
process (``cpu_s``, :class:`StepWatch`). Each W runs ``--repeat`` times (default ``REPEAT``),
alternating with the other W, and each step keeps its fastest run (every run's pictures/s in
``runs``). Per step: the speed-up from 1 to 2 workers and the scaling efficiency (speed-up / 2).
The same ingest with ``compute.scheduler: auto`` (today's fork pool) is measured beside it, at
every size. Writes ``reports/bench/scale.json``.

The machine has 2 cores and this process (the database writes, reading partitions back) shares
them with the workers, so 2 workers cannot reach 2x here; the figures say how far they get.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from benchmarks import common
from benchmarks.cluster import process_cluster
from benchmarks.common import write_report
from benchmarks.folders import BENCH_DATA, _done, _finish, demo_folder
from benchmarks.measure import tail

SIZES = (10_000, 100_000)
WORKERS = (1, 2)
REPEAT = 2  # runs of each worker count (measure)
FRAME_SIZE = (160, 90)
BASE_FRAMES = 2000
FULL_SIZE = (1280, 720)  # the ISS HDEV frames' size
FULL_SIZE_N = 10_000  # 1.5 GB of frames
FULL_SIZE_QUALITY = 92  # a variant then weighs what the real frame does (~170 KB)
PER_FOLDER = 10_000
FIT_SAMPLE = 5000
FULL_EPOCHS = 1
FULL_FIT_SAMPLE = 20_000
FULL_STEPS = ["ingest", "sampling", "training", "encode", "features", "clustering", "index", "reports", "facets"]
INDEX_STEP = ["-c", "from iss.config import load_config; from iss.search.build import load_search_model, sync_index; "
                    "cfg = load_config(); sync_index(cfg, load_search_model(cfg))"]
MB = 1024 * 1024


# --- the collection ---------------------------------------------------------------------------

def _variant(base: np.ndarray, index: int, quality: int = 85) -> bytes:
    """JPEG bytes of ``base`` with picture ``index``'s own brightness offset and noise patch."""
    from PIL import Image

    rng = np.random.default_rng(index)
    frame = base.astype(np.int16) + int(rng.integers(-6, 7))
    h, w = frame.shape[:2]
    y, x = int(rng.integers(0, h - 16)), int(rng.integers(0, w - 16))
    frame[y:y + 16, x:x + 16] += rng.integers(-40, 41, size=(16, 16, 3), dtype=np.int16)
    out = io.BytesIO()
    Image.fromarray(np.clip(frame, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=quality)
    return out.getvalue()


def _write_range(args: tuple[Path, int, int, Path, int]) -> None:
    folder, start, stop, bases_file, quality = args
    bases = np.load(bases_file)
    for i in range(start, stop):
        path = folder / f"{i // PER_FOLDER:03d}" / f"frame-{i:07d}.jpg"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_variant(bases[i % len(bases)], i, quality))


def _base_frames(full_size: bool) -> np.ndarray:
    """The frames every file is a variant of: ``BASE_FRAMES`` demo frames at 160x90, or the real frames."""
    from PIL import Image

    from iss.config import real_frames_dir

    if full_size:
        paths = sorted(real_frames_dir().glob("*.jpg"))
        if not paths:
            raise SystemExit(f"no real frames in {real_frames_dir()} for the full-size ingest: set $ISS_REAL_FRAMES "
                             f"to a folder of 1280x720 JPEG frames, or pass --full-size 0")
        return np.stack([np.asarray(Image.open(p).convert("RGB").resize(FULL_SIZE)) for p in paths])
    base_dir = demo_folder(BASE_FRAMES, size=FRAME_SIZE, progress=False) / "collections"
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(base_dir.glob("*.jpg"))])


def scale_folder(n: int, full_size: bool = False) -> Path:
    """``n`` distinct JPEG frames (module docstring), made once: ``data/bench/scale-<n>-160x90/``, or with
    ``full_size`` ``data/bench/scale-real-<n>-1280x720/`` (variants of the real frames)."""
    from multiprocessing import Pool

    size, quality = (FULL_SIZE, FULL_SIZE_QUALITY) if full_size else (FRAME_SIZE, 85)
    folder = BENCH_DATA / f"scale-{'real-' if full_size else ''}{n}-{size[0]}x{size[1]}"
    if _done(folder):
        return folder
    started = time.perf_counter()
    bases = _base_frames(full_size)
    folder.mkdir(parents=True, exist_ok=True)
    bases_file = folder / "bases.npy"
    np.save(bases_file, bases)
    print(f"writing {n:,} distinct {size[0]}x{size[1]} frames into {folder} (once; cached)", flush=True)
    step = 500 if full_size else 5000
    with Pool(os.cpu_count() or 1) as pool:
        pool.map(_write_range, [(folder / "frames", s, min(n, s + step), bases_file, quality)
                                for s in range(0, n, step)])
    bases_file.unlink()
    return _finish(folder, {"kind": "scale-real" if full_size else "scale", "n": n, "size": list(size),
                            "base_frames": len(bases), "quality": quality,
                            "generate_s": round(time.perf_counter() - started, 1)})


# --- the memory of the workers ------------------------------------------------------------------

def warm_worker() -> None:
    """What a long-lived worker has imported after its first tasks (TensorFlow, umap and numba's
    cached code, Zarr, fsspec, the modules of the steps' tasks): a one-off per worker, not a cost of
    the step measured."""
    import fsspec  # noqa: F401
    import tensorflow  # noqa: F401
    import zarr  # noqa: F401

    import iss.clustering.predict  # noqa: F401
    import iss.data.ingest  # noqa: F401
    import iss.models.encode  # noqa: F401 - keras, SQLAlchemy: ~0.3 s, once per worker
    from iss.clustering.umap_compat import import_umap

    import_umap()


class StepWatch:
    """What the processes of a step use while in the block: the peak RSS (MiB) of each worker, polled
    every ``poll_s`` seconds in a thread, and the CPU seconds (user + system) of the workers, the
    scheduler and this process (the client, which writes the rows and reads the partitions back).

    The CPU seconds say where a step's time goes on a machine whose cores the client, the scheduler
    and the workers share: with ``c`` cores, a step cannot take less than its CPU seconds / ``c``.
    """

    def __init__(self, workers: list[int], scheduler: int | None = None, poll_s: float = 0.2):
        self.processes = [psutil.Process(pid) for pid in workers]
        self.scheduler = psutil.Process(scheduler) if scheduler is not None else None
        self.client = psutil.Process()
        self.peaks = [0.0] * len(workers)
        self.poll_s = poll_s
        self._stop = threading.Event()

    def _poll(self) -> None:
        while not self._stop.is_set():
            for i, proc in enumerate(self.processes):
                try:
                    self.peaks[i] = max(self.peaks[i], proc.memory_info().rss / MB)
                except psutil.Error:
                    pass
            self._stop.wait(self.poll_s)

    def _cpu(self) -> dict:
        def seconds(proc) -> float | None:
            if proc is None:
                return None
            try:
                times = proc.cpu_times()
                return times.user + times.system
            except psutil.Error:  # a process that ended: its time is no longer known
                return None

        return {"client": seconds(self.client), "workers": [seconds(p) for p in self.processes],
                "scheduler": seconds(self.scheduler)}

    def __enter__(self) -> "StepWatch":
        self._cpu_before = self._cpu()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        after, before = self._cpu(), self._cpu_before

        def spent(a, b):  # None: not known (no scheduler found, or a process that ended)
            return None if a is None or b is None else round(a - b, 2)

        self.cpu_s = {"client": spent(after["client"], before["client"]),
                      "scheduler": spent(after["scheduler"], before["scheduler"]),
                      "workers": [spent(a, b) for a, b in zip(after["workers"], before["workers"])]}


def _scheduler_pid() -> int | None:
    """The ``dask scheduler`` that :func:`benchmarks.cluster.process_cluster` started from this process."""
    for child in psutil.Process().children():
        try:
            if "dask_scheduler" in " ".join(child.cmdline()):
                return child.pid
        except psutil.Error:
            continue
    return None


# --- the steps --------------------------------------------------------------------------------

def project_config(root: Path, folder: Path, scheduler: str):
    from iss.config import load_config

    return load_config(mode="demo", root=root, overrides={
        "database": {"url": f"sqlite:///{root / 'scale.db'}"},
        "paths": {"collections": str(folder / "frames")},
        "ingest": {"filename_pattern": "", "recursive": True},
        "compute": {"scheduler": scheduler, "store": str(root / "stores")},
        "clustering": {"n2d": {"n_clusters": 6}},
    })


def save_untrained_encoder(cfg) -> tuple[str, str]:
    """An untrained ``simple_conv`` encoder of the demo's input shape, saved where ``encode`` looks."""
    from iss.models.autoencoders import build_autoencoder
    from iss.models.store import ENCODER_FILE, model_dir

    model_type, model_name = "simple_conv", "scale"
    width, height = cfg.get("ingest.input_size")
    autoencoder = build_autoencoder(model_type, (int(height), int(width), 3),
                                    **(cfg.get(f"models.{model_type}") or {}))
    folder = model_dir(cfg, model_type, model_name)
    folder.mkdir(parents=True, exist_ok=True)
    autoencoder.encoder.save(folder / ENCODER_FILE)
    return model_type, model_name


def run_steps(root: Path, folder: Path, n_workers: int, logs: Path, ingest_only: bool = False,
              ) -> tuple[dict, float]:
    """Ingest, encode and predict (or ingest only) on a fresh project ``root`` with ``n_workers`` worker
    processes: ``({step: figures}, worker warm-up seconds)``."""
    from iss.clustering.registry import run_clustering
    from iss.db.engine import get_engine
    from iss.features import build_features
    from iss.models.encode import encode_collection
    from iss.pipeline import run_metrics
    from iss.data.ingest import populate_db

    shutil.rmtree(root, ignore_errors=True)
    out: dict = {}
    with process_cluster(n_workers, logs / f"w{n_workers}", warm=warm_worker) as (address, workers, warmed_s):
        warmup_s = round(warmed_s, 1)
        pids, scheduler = [w.pid for w in workers], _scheduler_pid()
        cfg = project_config(root, folder, address)
        engine = get_engine(cfg.database_url)
        with StepWatch(pids, scheduler) as watch:
            tick = time.perf_counter()
            summary = populate_db(cfg, engine, progress=False)
            seconds = time.perf_counter() - tick
        n = summary.accepted
        out["ingest"] = _figures(n, seconds, watch)
        if ingest_only:
            engine.dispose()
            shutil.rmtree(root, ignore_errors=True)
            return out, warmup_s
        model_type, model_name = save_untrained_encoder(cfg)
        with StepWatch(pids, scheduler) as watch:
            tick = time.perf_counter()
            encode_collection(cfg, engine, model_type, model_name, only_new=False)
            seconds = time.perf_counter() - tick
        out["encode"] = _figures(n, seconds, watch)
        build_features(cfg, "autoencoder", model_type, model_name)
        with StepWatch(pids, scheduler) as watch:  # its CPU seconds include the fit, in this process
            run_id = run_clustering(cfg, engine, "n2d", model_type, model_name, fit_sample=min(FIT_SAMPLE, n // 2),
                                    features="autoencoder")
        timings = run_metrics(engine, run_id)["timings"]
        out["predict"] = _figures(n - min(FIT_SAMPLE, n // 2), timings["predict_s"], watch)
        out["predict"]["fit_s"] = round(timings["fit_s"], 1)
        out["predict"]["cpu_s_spans"] = "the fit in this process and the prediction"  # seconds: the prediction
        engine.dispose()
    shutil.rmtree(root, ignore_errors=True)
    return out, warmup_s


def _figures(n: int, seconds: float, watch: StepWatch) -> dict:
    return {"pictures": int(n), "seconds": round(seconds, 2), "pictures_per_s": round(n / max(seconds, 1e-9), 1),
            "peak_worker_mb": [round(p, 1) for p in watch.peaks], "cpu_s": watch.cpu_s}


def inprocess_ingest(root: Path, folder: Path) -> dict:
    """Today's single-machine ingest (``compute.scheduler: auto``: the fork pool) of the same folder."""
    from iss.data.ingest import populate_db
    from iss.db.engine import get_engine

    shutil.rmtree(root, ignore_errors=True)
    cfg = project_config(root, folder, "auto")
    engine = get_engine(cfg.database_url)
    tick = time.perf_counter()
    summary = populate_db(cfg, engine, progress=False)
    seconds = time.perf_counter() - tick
    engine.dispose()
    shutil.rmtree(root, ignore_errors=True)
    return {"pictures": summary.accepted, "seconds": round(seconds, 2),
            "pictures_per_s": round(summary.accepted / max(seconds, 1e-9), 1), "workers": summary.workers}


def scaling(by_workers: dict) -> dict:
    """Per step: speed-up from 1 to 2 workers, efficiency (speed-up / 2)."""
    out = {}
    for step in by_workers[1]:
        one, two = by_workers[1][step]["pictures_per_s"], by_workers[2][step]["pictures_per_s"]
        speedup = two / one if one else None
        out[step] = {"speedup": round(speedup, 3) if speedup else None,
                     "efficiency": round(speedup / 2, 3) if speedup else None}
    return out


def full_run(n: int, root: Path) -> dict:
    """Every step on ``n`` pictures as a user runs it, in process (module docstring)."""
    from benchmarks import iss_run

    folder = scale_folder(n)
    shutil.rmtree(root, ignore_errors=True)
    config = iss_run.write_config(root, {
        "paths": {"collections": str(folder / "frames")},
        "ingest": {"filename_pattern": "", "recursive": True},
        "training": {"epochs": FULL_EPOCHS},
        "clustering": {"fit_sample": FULL_FIT_SAMPLE},
    })
    print(f"full run on {n:,} pictures in {root}", flush=True)
    measured = iss_run.run_steps(root, config, FULL_STEPS, root / "logs", time_limit_s=6 * 3600,
                                 memory_limit_mb=None, commands={"index": INDEX_STEP})
    out = {"pictures": n, "steps": {step: m.as_dict() for step, m in measured.items()}}
    for step, m in measured.items():
        if not m.ok:
            out["steps"][step]["log_tail"] = tail(m.log)
    out["total_s"] = round(sum(m.wall_s for m in measured.values()), 1)
    return out


def measure(folder: Path, tmp: Path, ingest_only: bool = False, repeat: int = REPEAT) -> dict:
    """The in-process ingest, then the steps with 1 and 2 workers, ``repeat`` times each, of ``folder``'s
    frames, with the scaling.

    The worker counts alternate (1, 2, 1, 2...) so that a busy spell of the shared machine does not
    land on one count alone; each step keeps its fastest run (the least disturbed one, as ``timeit``
    advises), and every run's pictures/s stays in ``runs``.
    """
    if repeat < 1:
        raise ValueError(f"repeat={repeat!r}: expected at least 1 run of each worker count")
    record: dict = {"inprocess_ingest": inprocess_ingest(tmp / "inprocess", folder)}
    print(f"  ingest in process: {record['inprocess_ingest']['pictures_per_s']:.0f} pictures/s", flush=True)
    runs: dict = {w: [] for w in WORKERS}
    warmups: dict = {str(w): [] for w in WORKERS}
    for _ in range(repeat):
        for w in WORKERS:
            steps, warmup_s = run_steps(tmp / f"w{w}", folder, w, tmp / "logs", ingest_only)
            runs[w].append(steps)
            warmups[str(w)].append(warmup_s)
            print(f"  {w} worker(s): " + ", ".join(f"{step} {f['pictures_per_s']:.0f}/s "
                                                  f"(peak {max(f['peak_worker_mb']):.0f} MB)"
                                                  for step, f in steps.items()), flush=True)
    by_workers = {w: fastest(r) for w, r in runs.items()}
    record["repeat"] = repeat
    record["worker_warmup_s"] = warmups
    record["workers"] = {str(w): v for w, v in by_workers.items()}
    record["scaling"] = scaling(by_workers)
    print("  scaling 1 -> 2 workers: " + ", ".join(f"{s} {v['speedup']}x" for s, v in record["scaling"].items()),
          flush=True)
    return record


def fastest(runs: list[dict]) -> dict:
    """Per step, the figures of the fastest of ``runs`` (each ``{step: figures}``), with ``runs``: every
    run's pictures/s, and the peak memory of each worker over all of them."""
    out = {}
    for step in runs[0]:
        best = max((r[step] for r in runs), key=lambda f: f["pictures_per_s"])
        peaks = [round(max(p), 1) for p in zip(*(r[step]["peak_worker_mb"] for r in runs))]
        out[step] = {**best, "peak_worker_mb": peaks, "runs": [r[step]["pictures_per_s"] for r in runs]}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--full", type=int, default=0, help="also run every step on this many pictures")
    parser.add_argument("--repeat", type=int, default=REPEAT,
                        help="runs of each worker count, alternating; each step keeps its fastest")
    parser.add_argument("--full-size", type=int, default=FULL_SIZE_N,
                        help="also measure ingest on this many 1280x720 frames (variants of the real ones); 0: not")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat {args.repeat}: expected at least 1 run of each worker count")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # a run on some sizes updates them and keeps the others' figures (each size is self-contained)
    previous = common.BENCH_DIR / "scale.json"
    kept = json.loads(previous.read_text()) if previous.exists() else {}
    result: dict = {"frame_size": list(FRAME_SIZE), "fit_sample": FIT_SAMPLE, "cores": os.cpu_count(),
                    "load_before": list(os.getloadavg()), "sizes": kept.get("sizes", {})}
    for key in ("full_run", "full_size_ingest"):
        if key in kept:
            result[key] = kept[key]
    BENCH_DATA.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="iss-scale-", dir=BENCH_DATA) as tmp:
        for n in args.sizes:
            print(f"{n:,} pictures", flush=True)
            result["sizes"][str(n)] = measure(scale_folder(n), Path(tmp), repeat=args.repeat)
        if args.full_size:
            print(f"{args.full_size:,} full-size frames (ingest)", flush=True)
            result["full_size_ingest"] = {"frame_size": list(FULL_SIZE),
                                          **measure(scale_folder(args.full_size, full_size=True), Path(tmp),
                                                    ingest_only=True, repeat=args.repeat)}
        if args.full:
            result["full_run"] = full_run(args.full, Path(tmp) / "full")
    result["load_after"] = list(os.getloadavg())
    write_report("scale", result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
