"""Distance core of the exact k-NN (:mod:`iss.neighbours`): NumPy/BLAS against scikit-learn, in one run.

``python -m benchmarks.exact_knn`` (about a minute). On 14,000 x 288 float32 (the ISS collection's
size and the demo model's latent size) it times, in the same process so that the ratios hold
on a loaded machine:

- one query and a batch of 100, k=12: NumPy (``(n, d) @ (d, m)``, argpartition, one BLAS thread,
  as the search's few-queries path), scikit-learn's brute-force ``kneighbors``, and
  :class:`~iss.neighbours.ExactNeighbours` as the search uses it (exact re-ranking included);
- the leave-one-out 10-NN graph of the whole collection (the search index build, UMAP's graph):
  NumPy blocks against scikit-learn's ``kneighbors()``.

Prints medians (ms) and ratios; ``--json PATH`` also writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import ThreadpoolController

from iss.neighbours import ExactNeighbours

N, D, K = 14_000, 288, 12


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def numpy_knn(data: np.ndarray, sq_norms: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """k nearest rows by the expanded formula: the NumPy core the search used before the merge."""
    d2 = np.einsum("ij,ij->i", queries, queries)[:, None] + sq_norms[None, :] - 2.0 * (data @ queries.T).T
    part = np.argpartition(d2, k - 1, axis=1)[:, :k]
    return np.take_along_axis(part, np.argsort(np.take_along_axis(d2, part, axis=1), axis=1), axis=1)


def numpy_leave_one_out(data: np.ndarray, sq_norms: np.ndarray, k: int, block: int = 2048) -> np.ndarray:
    out = np.empty((len(data), k), np.int64)
    for start in range(0, len(data), block):
        rows = np.arange(start, min(len(data), start + block))
        d2 = np.einsum("ij,ij->i", data[rows], data[rows])[:, None] + sq_norms[None, :] - 2.0 * data[rows] @ data.T
        d2[np.arange(len(rows)), rows] = np.inf
        part = np.argpartition(d2, k - 1, axis=1)[:, :k]
        out[rows] = np.take_along_axis(part, np.argsort(np.take_along_axis(d2, part, axis=1), axis=1), axis=1)
    return out


def measure(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(N, D)).astype(np.float32)
    sq_norms = np.einsum("ij,ij->i", data, data)
    nn = NearestNeighbors(algorithm="brute").fit(data)
    index = ExactNeighbours(data, exact=True, center=data.mean(axis=0))
    blas = ThreadpoolController()
    out = {"n": N, "dim": D, "k": K}
    for m, repeats in ((1, 200), (100, 20)):
        queries = rng.normal(size=(m, D)).astype(np.float32)
        row = {}
        for threads in (1, None):  # one thread (what a server request gets), every core
            with blas.limit(limits=threads):
                numpy_ms = _median_ms(lambda: numpy_knn(data, sq_norms, queries, K), repeats)
                sklearn_ms = _median_ms(lambda: nn.kneighbors(queries, K), repeats)
            tag = "1_thread" if threads == 1 else "all_threads"
            row[tag] = {"numpy_ms": round(numpy_ms, 3), "sklearn_ms": round(sklearn_ms, 3),
                        "sklearn_over_numpy": round(sklearn_ms / numpy_ms, 2)}
        row["exact_neighbours_ms"] = round(_median_ms(lambda: index.kneighbors(queries, K), repeats), 3)
        np.testing.assert_array_equal(index.kneighbors(queries, K)[1], nn.kneighbors(queries, K)[1])
        out[f"query_{m}"] = row
    numpy_s = _median_ms(lambda: numpy_leave_one_out(data, sq_norms, 10), 2) / 1e3
    sklearn_s = _median_ms(lambda: nn.kneighbors(n_neighbors=10), 2) / 1e3
    out["leave_one_out_10"] = {"numpy_s": round(numpy_s, 2), "sklearn_s": round(sklearn_s, 2),
                               "sklearn_over_numpy": round(sklearn_s / numpy_s, 2)}
    out["load_average"] = [round(v, 2) for v in os.getloadavg()]
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    result = measure()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return result


if __name__ == "__main__":
    main()
