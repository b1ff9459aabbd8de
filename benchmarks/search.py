"""Similar-picture search: how often "no good match" is right, how fast ``iss similar`` answers, a
bounded local load test of ``POST /search`` on a 14,000-picture index, and exact brute force
against scikit-learn and pynndescent at that size.

    python -m benchmarks.search                          # 300 requests, 4 at a time
    BENCH_SEARCH_REQUESTS=1000 BENCH_SEARCH_CONCURRENCY=8 python -m benchmarks.search

Setup (in a temporary project folder, deleted at the end): ``BENCH_SEARCH_COLLECTION`` (800)
demo frames (1280x720) generated; the last ``BENCH_SEARCH_HELD_OUT`` (200) are moved out of the
collection before ingest, never indexed; the rest are ingested and encoded by a really trained
``simple_conv`` autoencoder (a few epochs: speed, not quality, is measured), and their search
index and calibration are built the normal way (:func:`iss.search.build.sync_index`).

Verdict evaluation, against that real index:

- ``accept_rate_in_collection``: held-out demo frames called "good match";
- ``reject_rate_unrelated``: real photographs (:func:`tests.search.photographs.real_photographs`:
  scikit-learn's, matplotlib's and scikit-image's, as shipped) called "no good match";
- ``reject_rate_generated``: synthetic pictures (noise, flat colours, gradients, text,
  checkerboard, Fashion-MNIST) called "no good match";
- also: near copies of collection pictures (re-encoded, cropped, brightened) still "good match",
  and what the real ISS frames of ``shared/real/iss_frames`` get (reported, not a target: the
  demo collection only imitates them).

Then the index is grown to 14,000 pictures (the size of the real ISS collection) with synthetic
latents of the real latent size (288): real latents plus Gaussian noise of half the collection's
per-dimension spread, written to ``latents.npz`` and added to the index by ``sync_index``
(incremental), with database rows (``pictures``, a clustering run) for every one of them.

``cli_s``: wall time of ``python -m iss.cli similar QUERY`` in a fresh process against that
14,000-picture index, the first call and ``BENCH_SEARCH_CLI_RUNS`` (3) more; for scale, the
wall time of ``import tensorflow`` alone in a fresh process (what the command paid before).

Load test: the server (uvicorn, the same app as ``iss serve``) runs in a separate process on
127.0.0.1; after 10 warm-up requests, ``BENCH_SEARCH_REQUESTS`` (300) requests upload the same
1280x720 JPEG (a generated frame, ~150 kB) from ``BENCH_SEARCH_CONCURRENCY`` (4) client threads,
JSON answers. Reported: p50 / p95 latency, requests per second, and the server-side split
(decode / encode / search / appearance / metadata) from the answers' ``milliseconds``.

Index comparison, in-process on the same 14,000 x 288 float32 latents, k = 12: one query and a
batch of 100 (median of repeats), build time, and recall@12 against the exact answer, for
:class:`iss.search.index.SimilarityIndex` (exact, :mod:`iss.neighbours`), scikit-learn ``NearestNeighbors``
(brute and ball tree) and ``pynndescent.NNDescent`` (approximate; build timed twice, the first
run includes numba compilation). Also the exact index's own build (with leave-one-out
calibration) and an incremental add of 100 pictures.

Writes ``reports/bench/search.json`` with ``accept_rate_in_collection``, ``reject_rate_unrelated``,
``reject_rate_generated``, ``cli_s``, ``p50_ms``, ``p95_ms``, ``rps``, ``n_index`` and the details.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.common import ROOT, write_report  # noqa: E402

N_INDEX = int(os.environ.get("BENCH_SEARCH_N", 14_000))
N_COLLECTION = int(os.environ.get("BENCH_SEARCH_COLLECTION", 800))
N_HELD_OUT = int(os.environ.get("BENCH_SEARCH_HELD_OUT", 200))
N_REAL = N_COLLECTION - N_HELD_OUT
CLI_RUNS = int(os.environ.get("BENCH_SEARCH_CLI_RUNS", 3))
N_REQUESTS = int(os.environ.get("BENCH_SEARCH_REQUESTS", 300))
CONCURRENCY = int(os.environ.get("BENCH_SEARCH_CONCURRENCY", 4))
K = 12
MODEL_TYPE, MODEL_NAME = "simple_conv", "bench"


def bench_config(root: Path):
    from iss.config import load_config

    return load_config(mode="demo", root=root, overrides={
        "database": {"url": "sqlite:///bench_search.db"},
        "training": {"model_type": MODEL_TYPE, "model_name": MODEL_NAME},
        "ingest": {"workers": 2}})


# --------------------------------------------------------------------------------------------
# Setup: a real small collection and model, then a 14,000-picture index
# --------------------------------------------------------------------------------------------

def setup(root: Path) -> dict:
    """Build the real collection, its model and index under ``root``; evaluate the verdict; then grow
    the index to ``N_INDEX`` pictures. Returns timings, sizes and the verdict evaluation."""
    import keras

    from iss.data.cache import ImageCache
    from iss.data.demo import generate_collection
    from iss.data.ingest import populate_db
    from iss.db.engine import get_engine
    from iss.models.autoencoders import build_autoencoder
    from iss.models.dataset import make_dataset
    from iss.models.encode import encode_collection
    from iss.models.store import latents_encoder_sha, latents_path, read_latents, write_latents
    from iss.models.training import model_dir, save_model
    from iss.search.build import load_search_model, sync_index

    timings = {}
    cfg = bench_config(root)
    started = time.perf_counter()
    generate_collection(root / "data" / "raw", n=N_COLLECTION, seed=0, progress=False)
    held_out = root / "held_out"
    held_out.mkdir()
    for path in sorted(cfg.path("collections").glob("*.jpg"))[N_REAL:]:  # never ingested, never indexed
        path.rename(held_out / path.name)
    engine = get_engine(cfg.database_url)
    populate_db(cfg, engine, progress=False)
    cache = ImageCache(cfg.path("cache"))
    keras.utils.set_random_seed(0)
    ae = build_autoencoder(MODEL_TYPE, input_shape=cache.input_shape, **cfg.section(f"models.{MODEL_TYPE}"))
    ae.compile(learning_rate=2e-3)
    ae.model.fit(make_dataset(cache.inputs, batch_size=32, shuffle=True, seed=0), epochs=4, verbose=0, shuffle=False)
    save_model(ae, model_dir(cfg, MODEL_TYPE, MODEL_NAME), {"model_type": MODEL_TYPE, "params": ae.params})
    encode_collection(cfg, engine, MODEL_TYPE, MODEL_NAME)
    timings["real_collection_s"] = time.perf_counter() - started

    model = load_search_model(cfg, MODEL_TYPE, MODEL_NAME)
    started = time.perf_counter()
    index, calibration, _ = sync_index(cfg, model, cache)
    timings["real_index_build_s"] = time.perf_counter() - started
    verdicts = evaluate_verdicts(cfg, engine, model, index, calibration, cache, held_out)

    # grow to N_INDEX with synthetic latents around the real ones, through the normal incremental update
    ids, latents = read_latents(cfg, MODEL_TYPE, MODEL_NAME)
    rng = np.random.default_rng(0)
    n_new = N_INDEX - len(ids)
    base = rng.integers(0, len(ids), n_new)
    spread = latents.std(axis=0, keepdims=True)
    synthetic = (latents[base] + rng.normal(0, 0.5, (n_new, latents.shape[1])) * spread).astype(np.float32)
    start = dt.datetime(2018, 1, 1)
    new_ids = np.array([(start + dt.timedelta(minutes=20 * i)).strftime("%Y%m%d-%H%M%S") for i in range(n_new)])
    all_ids, all_latents = np.concatenate([ids, new_ids]), np.concatenate([latents, synthetic])
    path = latents_path(cfg, MODEL_TYPE, MODEL_NAME)
    write_latents(path, all_ids, all_latents, latents_encoder_sha(path))
    write_database_rows(engine, ids, new_ids, base, all_latents)
    started = time.perf_counter()
    index, _, summary = sync_index(cfg, model, cache)
    timings["grow_to_n_index_s"] = time.perf_counter() - started
    assert summary.action == "added" and len(index) == N_INDEX, summary
    engine.dispose()
    return {"timings": timings, "latent_dim": int(all_latents.shape[1]), "latents": all_latents, "ids": all_ids,
            "verdicts": verdicts, "cfg": cfg}


def evaluate_verdicts(cfg, engine, model, index, calibration, cache, held_out: Path) -> dict:
    """Verdict rates of the real index on held-out frames, real photographs, generated pictures, copies."""
    from iss.config import datasets_dir
    from iss.search.service import SearchService
    from tests.search.conftest import near_copies
    from tests.search.photographs import generated_negatives, real_photographs

    service = SearchService(cfg, engine, model, index, calibration, cache)

    def verdicts(queries: dict) -> dict:
        return {name: service.search(data, k=K) for name, data in queries.items()}

    held = verdicts({p.stem: p.read_bytes() for p in sorted(held_out.glob("*.jpg"))})
    photos = verdicts(real_photographs())
    generated = verdicts(generated_negatives())
    originals = sorted(cfg.path("collections").glob("*.jpg"))[::20]
    copies = verdicts({f"{p.stem}_{edit}": data for p in originals for edit, data in near_copies(p).items()})
    real_folder = datasets_dir().parent / "real" / "iss_frames"  # shared/real beside shared/datasets
    real = verdicts({p.stem: p.read_bytes() for p in sorted(real_folder.glob("*.jpg"))})

    def rate(results: dict, good: bool) -> float | None:
        return round(float(np.mean([r.good_match == good for r in results.values()])), 4) if results else None

    def failed(results: dict, good: bool) -> dict:
        return {name: r.verdict_text if good else [c.name for c in r.verdict.checks if not c.passed]
                for name, r in results.items() if r.good_match == good}

    consistent = all(r.hits[0].confidence >= calibration.alpha for group in (held, photos, generated, copies, real)
                     for r in group.values() if r.good_match)
    return {"accept_rate_in_collection": rate(held, True), "n_held_out": len(held),
            "reject_rate_unrelated": rate(photos, False), "n_unrelated": len(photos),
            "reject_rate_generated": rate(generated, False), "n_generated": len(generated),
            "accept_rate_near_copies": rate(copies, True), "n_near_copies": len(copies),
            "real_iss_frames_accepted": rate(real, True), "n_real_iss_frames": len(real),
            "good_matches_have_confidence_at_least_alpha": consistent,
            "held_out_rejected": failed(held, False), "unrelated_accepted": failed(photos, True),
            "generated_accepted": failed(generated, True), "near_copies_rejected": failed(copies, False),
            "median_confidence_held_out": round(float(np.median([r.hits[0].confidence for r in held.values()])), 4),
            "calibration": calibration.summary()}


def write_database_rows(engine, real_ids, new_ids, base, latents) -> None:
    """``pictures`` rows for the synthetic ids and a clustering run covering all pictures."""
    from sklearn.cluster import KMeans

    from iss.db import schema
    from iss.db.queries import upsert

    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    rows = [dict(pictures_id=str(pid), filename=f"{pid}.jpg",
                 taken_at=dt.datetime.strptime(str(pid), "%Y%m%d-%H%M%S"), taken_at_source="filename",
                 width=1280, height=720, file_size=150_000, file_mtime=0.0, cache_index=None, ingested_at=now)
            for pid in new_ids]
    labels = KMeans(6, n_init=2, random_state=0).fit_predict(latents)
    with engine.begin() as conn:
        for i in range(0, len(rows), 2000):
            upsert(conn, schema.pictures, rows[i:i + 2000])
        conn.execute(schema.clustering_runs.insert().values(
            clustering_type="classical", clustering_version=1, model_type=MODEL_TYPE, model_name=MODEL_NAME,
            params={}, metrics={}, n_clusters=6, created_at=now))
        run_id = conn.execute(schema.clustering_runs.select()).mappings().first()["run_id"]
        all_ids = np.concatenate([real_ids, new_ids])
        embedding = [dict(run_id=run_id, pictures_id=str(pid), pictures_x=0.0, pictures_y=0.0, label=int(label),
                          silhouette=None) for pid, label in zip(all_ids, labels)]
        for i in range(0, len(embedding), 2000):
            conn.execute(schema.pictures_embedding.insert(), embedding[i:i + 2000])


# --------------------------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------------------------

def serve(root: Path, port: int) -> None:
    """Server process: the explorer app over the saved 14,000-picture index, loaded as ``iss serve`` does."""
    import uvicorn

    from iss.search.server import create_app
    from iss.search.service import SearchService

    cfg = bench_config(root)
    service = SearchService.from_config(cfg)
    uvicorn.run(create_app(cfg, service), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def time_cli(root: Path, query: bytes) -> dict:
    """Wall time of ``iss similar QUERY`` in fresh processes (the first call and ``CLI_RUNS`` more), and of
    ``import tensorflow`` alone, for scale."""
    import yaml

    config = root / "config_bench.yaml"
    config.write_text(yaml.safe_dump(bench_config(root).data))
    picture = root / "query.jpg"
    picture.write_bytes(query)
    env = {**os.environ, "ISS_CONFIG": str(config), "ISS_ROOT": str(root), "MODE": "bench"}

    def wall(command) -> float:
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{command} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        return elapsed

    command = [sys.executable, "-m", "iss.cli", "similar", str(picture), "--k", str(K)]
    runs = [wall(command) for _ in range(1 + CLI_RUNS)]
    tensorflow_s = wall([sys.executable, "-c", "import tensorflow"])
    return {"cli_s": round(runs[0], 3), "cli_s_runs": [round(r, 3) for r in runs],
            "cli_s_median": round(statistics.median(runs), 3), "import_tensorflow_s": round(tensorflow_s, 3)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query_jpeg() -> bytes:
    from iss.data.demo import render_frame

    image = render_frame("horizon", np.random.default_rng(123), (1280, 720))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def load_test(url: str, data: bytes) -> dict:
    """``N_REQUESTS`` uploads from ``CONCURRENCY`` threads; latencies and server-side timings."""
    import httpx

    local = threading.local()

    def one(_):
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=60)
        started = time.perf_counter()
        answer = client.post(url + "/search?format=json", files={"file": ("query.jpg", data, "image/jpeg")},
                             data={"k": str(K)})
        elapsed = time.perf_counter() - started
        if answer.status_code != 200:
            raise RuntimeError(f"POST /search answered {answer.status_code}: {answer.text[:300]}")
        return elapsed, answer.json()["milliseconds"]

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, range(10)))  # warm-up (connections, first requests)
        started = time.perf_counter()
        results = list(pool.map(one, range(N_REQUESTS)))
        wall = time.perf_counter() - started
    latencies = np.array([r[0] for r in results]) * 1000
    server = {key: round(statistics.median(r[1][key] for r in results), 2) for key in results[0][1]}
    return {"p50_ms": round(float(np.percentile(latencies, 50)), 2),
            "p95_ms": round(float(np.percentile(latencies, 95)), 2),
            "max_ms": round(float(latencies.max()), 2),
            "rps": round(N_REQUESTS / wall, 2), "wall_s": round(wall, 2),
            "server_median_ms": server}


# --------------------------------------------------------------------------------------------
# Index comparison
# --------------------------------------------------------------------------------------------

def timed(fn, repeat=7) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def compare_indexes(ids: np.ndarray, latents: np.ndarray) -> dict:
    from pynndescent import NNDescent
    from sklearn.neighbors import NearestNeighbors

    from iss.search.index import SimilarityIndex

    rng = np.random.default_rng(1)
    queries = latents[rng.choice(len(latents), 100, replace=False)] + rng.normal(0, 0.1, (100, latents.shape[1])
                                                                                 ).astype(np.float32)
    one = queries[:1]
    out = {}

    started = time.perf_counter()
    exact = SimilarityIndex().build(ids, latents)
    build_s = time.perf_counter() - started
    truth = exact.query(queries, K).indices
    out["numpy_exact"] = {"build_s": round(build_s, 2), "build_includes": "leave-one-out 10-NN of every picture",
                          "query_1_ms": round(timed(lambda: exact.query(one, K)), 3),
                          "query_100_ms": round(timed(lambda: exact.query(queries, K)), 2), "recall": 1.0}

    for algorithm in ("brute", "ball_tree"):
        started = time.perf_counter()
        nn = NearestNeighbors(n_neighbors=K, algorithm=algorithm).fit(latents)
        build_s = time.perf_counter() - started
        found = nn.kneighbors(queries, K, return_distance=False)
        out[f"sklearn_{algorithm}"] = {
            "build_s": round(build_s, 2), "query_1_ms": round(timed(lambda: nn.kneighbors(one, K), 5), 3),
            "query_100_ms": round(timed(lambda: nn.kneighbors(queries, K), 3), 2),
            "recall": round(recall(found, truth), 4)}

    builds = []
    for _ in range(2):  # the first build compiles numba functions
        started = time.perf_counter()
        approx = NNDescent(latents, n_neighbors=30, random_state=0, n_jobs=1)
        approx.prepare()
        builds.append(time.perf_counter() - started)
    approx.query(queries, k=K)  # compile the query path
    found = approx.query(queries, k=K)[0]
    out["pynndescent"] = {"build_s": round(builds[1], 2), "first_build_s_with_compilation": round(builds[0], 2),
                          "query_1_ms": round(timed(lambda: approx.query(one, k=K)), 3),
                          "query_100_ms": round(timed(lambda: approx.query(queries, k=K)), 2),
                          "recall": round(recall(found, truth), 4)}

    new_ids = np.array([f"new-{i}" for i in range(100)])
    new = latents[:100] + rng.normal(0, 0.1, (100, latents.shape[1])).astype(np.float32)
    started = time.perf_counter()
    exact.add(new_ids, new)
    out["numpy_exact"]["add_100_s"] = round(time.perf_counter() - started, 3)
    return out


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


# --------------------------------------------------------------------------------------------

def main() -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="iss-bench-search-"))
    process = None
    try:
        print(f"setting up: {N_COLLECTION} demo frames, {N_HELD_OUT} held out, then a {N_INDEX}-picture index in "
              f"{workdir} ...", flush=True)
        built = setup(workdir)
        timings, verdicts = built["timings"], built["verdicts"]
        print(f"  real {N_REAL}-picture collection + model: {timings['real_collection_s']:.1f} s; its index and "
              f"calibration: {timings['real_index_build_s']:.1f} s; grown to {N_INDEX}: "
              f"{timings['grow_to_n_index_s']:.1f} s", flush=True)
        print(f"verdicts: held-out frames accepted {verdicts['accept_rate_in_collection']:.1%} "
              f"(of {verdicts['n_held_out']}), real photographs rejected {verdicts['reject_rate_unrelated']:.1%} "
              f"(of {verdicts['n_unrelated']}), generated pictures rejected {verdicts['reject_rate_generated']:.1%} "
              f"(of {verdicts['n_generated']}), near copies accepted {verdicts['accept_rate_near_copies']:.1%}; "
              f"real ISS frames accepted {verdicts['real_iss_frames_accepted']}", flush=True)
        for key in ("held_out_rejected", "unrelated_accepted", "generated_accepted", "near_copies_rejected"):
            if verdicts[key]:
                print(f"  {key}: {verdicts[key]}", flush=True)

        data = query_jpeg()
        cli = time_cli(workdir, data)
        print(f"iss similar against {N_INDEX} pictures, fresh process: first call {cli['cli_s']:.2f} s, runs "
              f"{cli['cli_s_runs']} (import tensorflow alone: {cli['import_tensorflow_s']:.2f} s)", flush=True)

        port = free_port()
        log = open(workdir / "server.log", "w")
        process = subprocess.Popen([sys.executable, "-m", "benchmarks.search", "serve", str(workdir), str(port)],
                                   cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        wait_for(url, process, workdir / "server.log")
        print(f"load test: {N_REQUESTS} x POST /search ({len(data) / 1024:.0f} kB JPEG, k={K}), "
              f"{CONCURRENCY} concurrent clients ...", flush=True)
        load = load_test(url, data)
        print(f"  p50 {load['p50_ms']:.1f} ms, p95 {load['p95_ms']:.1f} ms, {load['rps']:.1f} requests/s; "
              f"server median split (ms): {load['server_median_ms']}", flush=True)
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()

    try:
        print(f"index comparison on {N_INDEX} x {built['latent_dim']} latents, k={K} ...", flush=True)
        indexes = compare_indexes(built["ids"], built["latents"])
        for name, figures in indexes.items():
            print(f"  {name:<18} build {figures['build_s']:>6.2f} s  1 query {figures['query_1_ms']:>8.3f} ms  "
                  f"100 queries {figures['query_100_ms']:>8.2f} ms  recall@{K} {figures['recall']:.3f}", flush=True)
        ratio = indexes["pynndescent"]["query_1_ms"] / indexes["numpy_exact"]["query_1_ms"]
        print(f"  one query: pynndescent / exact NumPy = {ratio:.2f}x", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    result = {"accept_rate_in_collection": verdicts["accept_rate_in_collection"],
              "reject_rate_unrelated": verdicts["reject_rate_unrelated"],
              "reject_rate_generated": verdicts["reject_rate_generated"],
              **cli, "p50_ms": load["p50_ms"], "p95_ms": load["p95_ms"], "rps": load["rps"], "n_index": N_INDEX,
              "latent_dim": built["latent_dim"], "requests": N_REQUESTS, "concurrency": CONCURRENCY,
              "max_ms": load["max_ms"], "server_median_ms": load["server_median_ms"],
              "index_build_s": indexes["numpy_exact"]["build_s"],
              "timings_s": {k: round(v, 2) for k, v in timings.items()},
              "verdicts": verdicts, "indexes": indexes}
    write_report("search", result)
    return result


def wait_for(url: str, process, log_path: Path, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}):\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"the server did not answer within {timeout} s:\n{log_path.read_text()[-3000:]}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
