"""Approximate nearest neighbours for the search index above ``search.approximate_above``: which library.

``python -m benchmarks.ann`` (100,000 points, faiss HNSW and IVF and the search index itself: about
4 minutes on 2 cores; part of ``make bench``)
``python -m benchmarks.ann --libs all --no-iss`` (every candidate library: hnswlib, usearch and pynndescent
add about 12 minutes at 100,000)
``python -m benchmarks.ann --data fashion_mnist --libs all`` (real pictures: Fashion-MNIST, 69,000 points)
``python -m benchmarks.ann --n 1000000 --libs faiss_ivf --no-iss`` (``make bench-ann ANN_ARGS=...``; the
HNSW build alone at 1M takes longer than this machine's 8-minute benchmark budget, measure it on 300,000)
``python -m benchmarks.ann --n 200000 --libs faiss_hnsw --sharded`` (also the sharded build of
:mod:`iss.search.shards`; ``--shard-size`` other than ``search.shard_size``'s default)

On latents-like data (float32, 288 dimensions as the demo model's latents, drawn around 3,000
centres of unequal sizes on a 32-dimensional subspace, plus small noise in every dimension: real
encoder latents are clustered and of low intrinsic dimension; uniform noise would be the
unrealistic worst case), it measures for each candidate library, in one process:

- ``recall_at_10``: share of the exact 10 nearest neighbours (brute force) that the library returns
  among its 10, for 1,000 held-out queries (new pictures from the same source, as the search sees);
- ``build_s``: wall time to index the points (all cores);
- ``query_p50_ms``: median time of one query on one thread (a server answers each request on its
  own thread), against the exact brute force on one thread (``exact``);
- ``index_mb``: the serialized index (what the search index folder holds besides ``index.npz``);
  ``rss_mb``: growth of the process's resident memory while building.

Then the :class:`~iss.search.index.SimilarityIndex` itself with ``approximate_above`` under ``n``
(``iss``): recall@10 of its queries after exact re-ranking, and how far its leave-one-out
calibration (the "no good match" threshold) is from the exact one, on a sample of rows.

With ``--sharded`` (``sharded`` in the report): the index built as Dask tasks, one HNSW graph per
shard of ``--shard-size`` rows, on a LocalCluster of 1 and of 2 workers (``build_s_1_worker``,
``build_s_2_workers``, start-up included; ``cluster_start_s`` alone) against the single graph built
in this process (``single_graph_build_s``, all cores), and the search index over those shards:
recall@10, query p50 and the leave-one-out calibration, as for ``iss``.

Writes ``reports/bench/ann.json``.
"""

from __future__ import annotations

import argparse
import gc
import os
import time

import numpy as np
import psutil

from benchmarks.common import write_report

D, K, N_QUERIES, N_CENTRES, SUBSPACE = 288, 10, 1000, 3000, 32


def latents_like(n: int, seed: int = 0, d: int = D) -> np.ndarray:
    """``n`` float32 points of ``d`` dimensions with clustered, low-dimensional structure.

    Centres on a random ``SUBSPACE``-dimensional subspace; cluster sizes follow a Zipf-like law (a few
    large kinds of pictures, many small ones); each point is its centre plus spread inside the
    subspace and a little isotropic noise (what an encoder's latents look like, not uniform noise).
    """
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, SUBSPACE)))[0].astype(np.float32) * 4.0
    centres = rng.standard_normal((N_CENTRES, SUBSPACE)).astype(np.float32)
    weights = 1.0 / np.arange(1, N_CENTRES + 1) ** 0.7
    which = rng.choice(N_CENTRES, size=n, p=weights / weights.sum())
    spread = rng.uniform(0.15, 0.4, N_CENTRES).astype(np.float32)
    out = np.empty((n, d), np.float32)
    for start in range(0, n, 100_000):
        rows = slice(start, min(n, start + 100_000))
        low = centres[which[rows]] + rng.standard_normal((len(which[rows]), SUBSPACE)).astype(np.float32) \
            * spread[which[rows], None]
        out[rows] = low @ basis.T + 0.05 * rng.standard_normal((len(which[rows]), d)).astype(np.float32)
    return out


def fashion_mnist_like(n: int) -> np.ndarray:
    """Real pictures instead: Fashion-MNIST's 70,000 images (784 pixels) projected on their first
    288 principal components (``--data fashion_mnist``; up to 70,000 points, ``$ISS_DATASETS``)."""
    from sklearn.decomposition import PCA

    from benchmarks.quality import load_dataset

    x = load_dataset("fashion_mnist")[0].reshape(70_000, -1)[:n].astype(np.float32) / 255.0
    return PCA(D, random_state=0, svd_solver="randomized").fit_transform(x).astype(np.float32)


def exact_knn(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    from iss.neighbours import ExactNeighbours

    return ExactNeighbours(data, exact=True).kneighbors(queries, k)[1]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[f >= 0]) & set(t)) / len(t) for f, t in zip(found, truth)]))


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def _p50_ms(search_one, queries: np.ndarray, n: int = 200) -> float:
    search_one(queries[:1])  # warm up (numba compiles, caches)
    times = []
    for q in queries[:n]:
        start = time.perf_counter()
        search_one(q[None, :])
        times.append(time.perf_counter() - start)
    return round(float(np.median(times)) * 1e3, 3)


# --- one builder per candidate: returns (index, search(q, k) -> indices, set_threads(n), serialized bytes) --

def _faiss_hnsw(data, m=32, ef_construction=100, ef_search=(32, 64, 128)):
    import faiss

    index = faiss.IndexHNSWFlat(data.shape[1], m)
    index.hnsw.efConstruction = ef_construction
    index.add(data)

    def search(q, k, ef):
        index.hnsw.efSearch = ef
        return index.search(q, k)[1]
    return {"params": {"M": m, "efConstruction": ef_construction}, "sweep": ("efSearch", ef_search),
            "search": search, "threads": faiss.omp_set_num_threads,
            "size": lambda: faiss.serialize_index(index).nbytes}


def _faiss_ivf(data, nprobe=(8, 16, 32)):
    import faiss

    nlist = int(4 * np.sqrt(len(data)))
    quantizer = faiss.IndexFlatL2(data.shape[1])
    index = faiss.IndexIVFFlat(quantizer, data.shape[1], nlist)
    rng = np.random.default_rng(0)
    index.train(data[rng.choice(len(data), size=min(len(data), 40 * nlist), replace=False)])
    index.add(data)

    def search(q, k, probe):
        index.nprobe = probe
        return index.search(q, k)[1]
    return {"params": {"nlist": nlist}, "sweep": ("nprobe", nprobe), "search": search,
            "threads": faiss.omp_set_num_threads, "size": lambda: faiss.serialize_index(index).nbytes}


def _hnswlib(data, m=32, ef_construction=100, ef_search=(32, 64, 128)):
    import hnswlib

    index = hnswlib.Index(space="l2", dim=data.shape[1])
    index.init_index(max_elements=len(data), M=m, ef_construction=ef_construction, random_seed=0)
    index.add_items(data, np.arange(len(data)), num_threads=os.cpu_count())

    def search(q, k, ef):
        index.set_ef(ef)
        return index.knn_query(q, k=k, num_threads=1)[0].astype(np.int64)

    def size():
        path = f"/tmp/hnswlib-bench-{os.getpid()}.bin"
        index.save_index(path)
        nbytes = os.path.getsize(path)
        os.remove(path)
        return nbytes
    return {"params": {"M": m, "ef_construction": ef_construction}, "sweep": ("ef", ef_search),
            "search": search, "threads": None, "size": size}


def _usearch(data, m=32, expansion_add=100, ef_search=(32, 64, 128)):
    from usearch.index import Index

    index = Index(ndim=data.shape[1], metric="l2sq", dtype="f32", connectivity=m, expansion_add=expansion_add)
    index.add(np.arange(len(data)), data, threads=os.cpu_count() or 0)

    def search(q, k, ef):
        index.expansion_search = ef
        return np.asarray(index.search(q, k, threads=1).keys, dtype=np.int64).reshape(len(q), -1)
    return {"params": {"connectivity": m, "expansion_add": expansion_add}, "sweep": ("expansion_search", ef_search),
            "search": search, "threads": None, "size": lambda: len(index.save())}


def _pynndescent(data, epsilon=(0.1, 0.2)):
    from pynndescent import NNDescent

    index = NNDescent(data, n_neighbors=30, random_state=0, n_jobs=os.cpu_count())
    index.prepare()

    def search(q, k, eps):
        return index.query(q, k=k, epsilon=eps)[0].astype(np.int64)

    def size():
        import pickle
        return len(pickle.dumps(index))
    return {"params": {"n_neighbors": 30}, "sweep": ("epsilon", epsilon), "search": search, "threads": None,
            "size": size}


LIBRARIES = {"faiss_hnsw": _faiss_hnsw, "faiss_ivf": _faiss_ivf, "hnswlib": _hnswlib, "usearch": _usearch,
             "pynndescent": _pynndescent}


def measure_library(name: str, data: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict:
    gc.collect()
    rss0, start = _rss_mb(), time.perf_counter()
    built = LIBRARIES[name](data)
    build_s = time.perf_counter() - start
    rss = _rss_mb() - rss0
    if built["threads"]:
        built["threads"](1)
    key, values = built["sweep"]
    runs = []
    for value in values:
        found = built["search"](queries, K, value)
        runs.append({key: value, "recall_at_10": round(recall(found, truth), 4),
                     "query_p50_ms": _p50_ms(lambda q: built["search"](q, K, value), queries)})
    if built["threads"]:
        built["threads"](os.cpu_count() or 1)
    out = {"library": name, "params": built["params"], "build_s": round(build_s, 2), "rss_mb": round(rss, 1),
           "index_mb": round(built["size"]() / 2**20, 1), "runs": runs}
    print(f"  {name:<12} build {build_s:7.1f} s  index {out['index_mb']:7.1f} MB  rss +{rss:7.1f} MB  " +
          "  ".join(f"{key}={r[key]}: recall {r['recall_at_10']:.4f} p50 {r['query_p50_ms']:.3f} ms" for r in runs),
          flush=True)
    del built
    gc.collect()
    return out


def measure_iss(data: np.ndarray, queries: np.ndarray, truth: np.ndarray, sample: int = 2000,
                shard_build=None) -> dict:
    """The search index as it runs above the threshold: its recall and its calibration against exact.

    ``shard_build`` (:class:`iss.search.shards.ShardedBuild`): its graph built as shards on Dask.
    """
    from iss.neighbours import ExactNeighbours
    from iss.search.index import SimilarityIndex

    ids = np.char.add("p", np.arange(len(data)).astype(str))
    start = time.perf_counter()
    index = SimilarityIndex(approximate_above=1, shard_build=shard_build).build(ids, data)
    build_s = time.perf_counter() - start
    found = index.query(queries, k=K).indices
    one = _p50_ms(lambda q: index.query(q, k=K), queries)
    # leave-one-out lists against exact ones, on a sample of rows (exact for all rows is n^2)
    rows = np.sort(np.random.default_rng(1).choice(len(data), size=min(sample, len(data)), replace=False))
    exact = ExactNeighbours(data, exact=True, center=index.center_)
    start = time.perf_counter()
    exact_d, exact_i = exact.kneighbors(None, index.n_stored, rows=rows)
    # the exact build computes these lists for every row: its time scales from the sample's
    exact_build_s = (time.perf_counter() - start) * len(data) / len(rows)
    loo_nn_equal = float(np.mean(index.knn_distances_[rows, 0] == exact_d[:, 0]))
    stored_recall = recall(index.knn_indices_[rows], exact_i)
    # threshold: the percentile of the sampled rows' exact nearest distances vs of the index's
    p = index.threshold_percentile
    exact_thr = float(np.percentile(exact_d[:, 0], p))
    approx_thr = float(np.percentile(index.knn_distances_[rows, 0], p))
    out = {"library": index.approximate_.library, "params": index.approximate_.params(),
           "build_s_with_loo_lists": round(build_s, 2), "exact_build_s_estimated": round(exact_build_s, 1),
           "recall_at_10": round(recall(found, truth), 4),
           "query_p50_ms": one, "loo_nearest_distance_exact_share": round(loo_nn_equal, 4),
           "loo_lists_recall": round(stored_recall, 4),
           "threshold_relative_error": round(abs(approx_thr - exact_thr) / exact_thr, 6),
           "loo_sample_rows": len(rows)}
    print(f"  iss index ({out['library']}): build with leave-one-out lists {build_s:.1f} s (exact: about "
          f"{exact_build_s:.0f} s, from {len(rows)} rows), recall@10 "
          f"{out['recall_at_10']:.4f}, p50 {one:.3f} ms; leave-one-out nearest distance exact for "
          f"{loo_nn_equal:.2%} of {len(rows)} rows, lists recall {stored_recall:.4f}, threshold off by "
          f"{out['threshold_relative_error']:.2e}", flush=True)
    return out


def _children_cpu_s() -> float:
    """CPU seconds of this process's finished child processes (a closed LocalCluster's workers)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _sharded_build(folder: str, shard_size: int, workers: int):
    from iss.compute import ComputeSettings
    from iss.search.shards import ShardedBuild

    return ShardedBuild(ComputeSettings(scheduler="local", n_workers=workers), f"{folder}/index_partitions.zarr",
                        shard_size)


def measure_sharded(data: np.ndarray, queries: np.ndarray, truth: np.ndarray, shard_size: int) -> dict:
    """The approximate index built as Dask tasks over shards (1 and 2 workers) against one graph built here."""
    import tempfile

    from iss.compute import ComputeSettings, open_compute
    from iss.search.approximate import ApproximateNeighbours, ShardedNeighbours

    center = data.mean(axis=0)
    vectors = np.ascontiguousarray(data - center, dtype=np.float32)
    out = {"shard_size": shard_size, "shards": -(-len(data) // shard_size)}
    with tempfile.TemporaryDirectory(prefix="ann-shards-") as folder:
        start = time.perf_counter()
        with open_compute(ComputeSettings(scheduler="local", n_workers=2)):
            out["cluster_start_s"] = round(time.perf_counter() - start, 2)
        for workers, key in ((1, "build_s_1_worker"), (2, "build_s_2_workers")):
            gc.collect()
            cpu, start = _children_cpu_s(), time.perf_counter()
            graph = ShardedNeighbours(shard_size, builder=_sharded_build(folder, shard_size, workers)).fit(vectors)
            out[key] = round(time.perf_counter() - start, 2)
            # the workers' CPU seconds over their wall time: below 1 a worker waited for a core (a shared machine)
            out[key.replace("build_s", "cpu_share")] = round((_children_cpu_s() - cpu) / (out[key] * workers), 2)
            del graph
        start = time.perf_counter()
        single = ApproximateNeighbours().fit(vectors)
        out["single_graph_build_s"] = round(time.perf_counter() - start, 2)
        out["single_graph_recall_at_10"] = round(recall(single.kneighbors(queries - center, K)[1], truth), 4)
        out["single_graph_query_p50_ms"] = _p50_ms(lambda q: single.kneighbors(q - center, K), queries)
        del single
        out["speedup_2_workers"] = round(out["build_s_1_worker"] / out["build_s_2_workers"], 2)
        print(f"  sharded      {out['shards']} shards of {shard_size:,}: build {out['build_s_1_worker']:.1f} s on 1 "
              f"worker, {out['build_s_2_workers']:.1f} s on 2 (cluster start {out['cluster_start_s']:.1f} s "
              f"included; workers had a core {out['cpu_share_1_worker']:.0%} / {out['cpu_share_2_workers']:.0%} of "
              f"the time); one graph here {out['single_graph_build_s']:.1f} s, recall@10 "
              f"{out['single_graph_recall_at_10']:.4f}, p50 {out['single_graph_query_p50_ms']:.3f} ms", flush=True)
        out["index"] = measure_iss(data, queries, truth, shard_build=_sharded_build(folder, shard_size, 2))
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="indexed points (default 100,000; 1,000,000 for the 1M figures)")
    parser.add_argument("--libs", default="faiss_hnsw,faiss_ivf",
                        help=f"comma-separated, of {', '.join(LIBRARIES)}, or all (default faiss_hnsw,faiss_ivf)")
    parser.add_argument("--no-iss", action="store_true", help="skip the SimilarityIndex measurement")
    parser.add_argument("--data", choices=["latents_like", "fashion_mnist"], default="latents_like",
                        help="latents-like synthetic points (default) or Fashion-MNIST's pictures on 288 principal components")
    parser.add_argument("--out", default="ann", help="report name under reports/bench (default ann)")
    parser.add_argument("--sharded", action="store_true",
                        help="also the index built as Dask tasks over shards, on 1 and 2 workers (iss/search/shards.py)")
    parser.add_argument("--shard-size", type=int, default=0, help="rows per shard (default search.shard_size's default)")
    args = parser.parse_args(argv)
    libs = list(LIBRARIES) if args.libs == "all" else [lib for lib in args.libs.split(",") if lib]
    unknown = sorted(set(libs) - set(LIBRARIES))
    if unknown:
        parser.error(f"unknown libraries {unknown}; expected some of {list(LIBRARIES)}")

    start = time.perf_counter()
    if args.data == "fashion_mnist":
        everything = fashion_mnist_like(min(args.n + N_QUERIES, 70_000))
        args.n = len(everything) - N_QUERIES
    else:
        everything = latents_like(args.n + N_QUERIES)
    data, queries = everything[:args.n], everything[args.n:]
    print(f"{args.n:,} x {D} {args.data} points in {time.perf_counter() - start:.1f} s; "
          f"{os.cpu_count()} cores", flush=True)
    start = time.perf_counter()
    truth = exact_knn(data, queries, K)
    from iss.neighbours import ExactNeighbours

    exact = ExactNeighbours(data, exact=True)
    result = {"data": args.data, "n": args.n, "dim": D, "k": K, "queries": N_QUERIES,
              "centres": N_CENTRES if args.data == "latents_like" else None,
              "exact": {"truth_s_for_1000_queries": round(time.perf_counter() - start, 2),
                        "query_p50_ms": _p50_ms(lambda q: exact.kneighbors(q, K), queries),
                        "data_mb": round(data.nbytes / 2**20, 1)},
              "libraries": {}}
    del exact
    print(f"  exact        one query p50 {result['exact']['query_p50_ms']:.3f} ms (one thread)", flush=True)
    for lib in libs:
        result["libraries"][lib] = measure_library(lib, data, queries, truth)
    if not args.no_iss:
        result["iss"] = measure_iss(data, queries, truth)
    if args.sharded:
        from iss.search.approximate import SHARD_ROWS

        result["sharded"] = measure_sharded(data, queries, truth, args.shard_size or SHARD_ROWS)
    write_report(args.out, result)
    return result


if __name__ == "__main__":
    main()
