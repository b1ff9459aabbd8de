"""Exact nearest neighbours: the one brute-force k-NN of the package, for the search and for clustering.

Why exact and brute force: at the sizes this project targets (2,000 demo pictures, ~14,000 for the
ISS collection, a few hundred dimensions) a query is one matrix product, well under a millisecond
to a few milliseconds with BLAS, and exact. An approximate index only pays off for much larger
collections: the search switches to one above ``search.approximate_above`` pictures
(:mod:`iss.search.approximate`, an HNSW graph re-ranked with exact distances; ``benchmarks/ann.py``
measures the libraries, ``benchmarks/search.py`` pynndescent against this module at 14,000).

The distance core is scikit-learn's brute-force ``NearestNeighbors``: chunked, float64-accumulated,
parallel over every core, every metric umap needs, and a point is left out of its own neighbours
by index (``kneighbors()`` without a query), so identical rows never list themselves. Measured on
14,000 x 288 float32 (``benchmarks/exact_knn.py``), it is as fast as NumPy for a batch of 100
queries and about twice as fast for the leave-one-out graph of the whole collection; for a few
Euclidean queries, a NumPy matrix-vector product on one BLAS thread is several times faster than
scikit-learn's chunked reduction (which pays a fixed set-up cost), so those take that path.

With ``exact=True`` (the search), the Euclidean distances of the candidates are recomputed by
difference, on vectors centred at ``center``, and re-ranked: the expanded ``|a|^2 + |b|^2 - 2ab``
loses digits for close pairs, and the search reports an indexed picture at distance 0.0.
"""

from __future__ import annotations

import functools
import os

import numpy as np
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import ThreadpoolController, threadpool_limits

_FEW_QUERIES = 32  # up to this many Euclidean queries: NumPy matrix-vector products on one thread
_SLACK = 4  # extra candidates re-ranked on exact distances


@functools.lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()


class ExactNeighbours:
    """Exact k nearest neighbours among the rows of ``data``.

    New clusterings hand it to UMAP wrapped in :class:`iss.clustering.umap_compat.TransformIndex`;
    clusterings saved before that hold it directly as UMAP's search index, so it keeps
    pynndescent's shape too: ``query(X, k, epsilon)`` and ``_angular_trees``.

    Parameters
    ----------
    data : array-like, shape (n, d)
        The indexed points (float32).
    metric : str, default="euclidean"
        Any metric of scikit-learn's brute-force neighbours.
    exact : bool, default=False
        Euclidean only: re-rank the candidates on distances recomputed by difference (see the
        module docstring). Off, the distances are scikit-learn's, as UMAP's neighbour graph uses them.
    center : array-like, shape (d,), optional
        With ``exact``: subtracted from every vector first (keeps float32 distances accurate far
        from the origin; distances do not change). Default: no centring.
    block_size : int, default=2048
        With ``exact``: query rows re-ranked at a time (bounds memory to ``block_size * (k + 4) * d``).
    """

    _angular_trees = False  # read by UMAP.transform of clusterings saved before TransformIndex

    def __init__(self, data, metric: str = "euclidean", exact: bool = False, center=None, block_size: int = 2048):
        self.metric = metric
        self.block_size = int(block_size)
        self.exact = bool(exact) and metric in ("euclidean", "l2")
        data = np.asarray(data, dtype=np.float32)
        self.center = None if center is None or not self.exact else np.asarray(center, dtype=np.float32)
        self.vectors = np.ascontiguousarray(data if self.center is None else data - self.center)
        self.nn = NearestNeighbors(algorithm="brute", metric=metric).fit(self.vectors)

    def __len__(self) -> int:
        return len(self.vectors)

    def __setstate__(self, state: dict) -> None:
        # clusterings saved before this module pickled clustering's ExactKNNIndex: {metric, nn}
        self.__dict__.update(state)
        if "vectors" not in state:
            self.exact, self.center, self.block_size = False, None, 2048
            self.vectors = self.nn._fit_X

    # --- the two ways to ask ----------------------------------------------------------------------
    def kneighbors(self, X=None, k: int = 10, rows=None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest indexed points, nearest first.

        Parameters
        ----------
        X : array-like, shape (m, d), optional
            Query points. None: the indexed points themselves, each leaving itself out (by index,
            so identical rows never list themselves).
        k : int, default=10
        rows : int array, optional
            With ``X=None``: only these indexed points (default all).

        Returns
        -------
        distances : float32 array, shape (m, k)
            ``inf`` where fewer than ``k`` points are available.
        indices : int64 array, shape (m, k)
            ``-1`` where fewer than ``k`` points are available.
        """
        leave_out = X is None
        if leave_out:
            rows = np.arange(len(self)) if rows is None else np.asarray(rows, dtype=np.int64)
            queries = self.vectors[rows]
        else:
            queries = np.asarray(X, dtype=np.float32).reshape(-1, self.vectors.shape[1])
            if self.center is not None:
                queries = queries - self.center
        available = len(self) - 1 if leave_out else len(self)
        # exact: a few more candidates, and fewer than k points is padded; else scikit-learn says if k is too many
        wanted = min(k + _SLACK, available) if self.exact else k
        if len(queries) == 0 or wanted <= 0:
            dist, idx = np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        elif self.exact and len(queries) <= _FEW_QUERIES:
            dist, idx = self._few(queries, wanted, rows if leave_out else None)
        elif leave_out and len(rows) == len(self):
            dist, idx = self._sklearn(None, wanted)
        elif leave_out:  # some indexed points: ask for one more, then drop each point itself by index
            dist, idx = self._sklearn(queries, wanted + 1)
            keep = np.argsort(idx == rows[:, None], axis=1, kind="stable")[:, :wanted]
            dist, idx = np.take_along_axis(dist, keep, axis=1), np.take_along_axis(idx, keep, axis=1)
        else:
            dist, idx = self._sklearn(queries, wanted)
        if self.exact:
            dist, idx = self._rerank(queries, dist, idx, k)
        return _pad(dist[:, :k], idx[:, :k], k)

    def query(self, X, k: int, epsilon: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
        """pynndescent's ``query``: ``(indices int32 (m, k), distances float32 (m, k))`` (UMAP.transform)."""
        dist, idx = self.kneighbors(X, k)
        return idx.astype(np.int32), dist

    def others(self, k: int) -> np.ndarray:
        """Indices ``(n, k)`` of each indexed point's k nearest other points, nearest first (int32)."""
        return self.kneighbors(None, k)[1].astype(np.int32)

    def neighbour_graph(self, k: int) -> tuple[np.ndarray, np.ndarray, "ExactNeighbours"]:
        """The indexed points' own k-NN graph, each point first as umap expects, for ``precomputed_knn``."""
        dist, idx = self.kneighbors(None, k - 1)
        n = len(idx)
        return (np.hstack([np.arange(n, dtype=np.int32)[:, None], idx.astype(np.int32)]),
                np.hstack([np.zeros((n, 1), np.float32), dist]), self)

    # --- distance cores -------------------------------------------------------------------------
    def _sklearn(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        # the one large distance computation of a clustering or an index build: worth every core this
        # process may use, or its Dask worker's threads (callers that must stay on one thread limit
        # the pool around the call)
        from iss.compute import available_cores, dask_worker_threads

        with threadpool_limits(limits=dask_worker_threads() or available_cores()):
            dist, idx = (self.nn.kneighbors(n_neighbors=k) if queries is None
                         else self.nn.kneighbors(queries, n_neighbors=k))
        return dist.astype(np.float32), idx.astype(np.int64)

    def _few(self, queries: np.ndarray, k: int, leave_out) -> tuple[np.ndarray, np.ndarray]:
        """A few Euclidean queries: NumPy matrix-vector products on one BLAS thread (0.3 ms instead of
        3-8 ms at 14,000 x 288 on a busy 2-core machine; a server answers requests on its own threads)."""
        with _blas_controller().limit(limits=1, user_api="blas"):
            if not hasattr(self, "_sq_norms"):
                self._sq_norms = np.einsum("ij,ij->i", self.vectors, self.vectors)
            sq = np.einsum("ij,ij->i", queries, queries)
            # (n, d) @ (d, m), transposed: a matrix-vector product, ~10x faster than (m, d) @ (d, n)
            d2 = sq[:, None] + self._sq_norms[None, :] - 2.0 * (self.vectors @ queries.T).T
        if leave_out is not None:
            d2[np.arange(len(queries)), leave_out] = np.inf
        part = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < d2.shape[1] else \
            np.broadcast_to(np.arange(d2.shape[1]), d2.shape).copy()
        return np.take_along_axis(d2, part, axis=1).astype(np.float32), part.astype(np.int64)

    def _rerank(self, queries, dist, idx, k) -> tuple[np.ndarray, np.ndarray]:
        """Distances of the candidates recomputed by difference, then the ``k`` nearest, stably."""
        dist = np.empty(idx.shape, np.float32)
        for start in range(0, len(idx), self.block_size):
            block = slice(start, start + self.block_size)
            diff = queries[block, None, :] - self.vectors[idx[block]]
            dist[block] = np.sqrt(np.einsum("mkd,mkd->mk", diff, diff))
        order = np.argsort(dist, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(dist, order, axis=1), np.take_along_axis(idx, order, axis=1)


def _pad(dist: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(m, k)`` arrays, ``inf`` / ``-1`` where fewer than ``k`` neighbours exist."""
    if dist.shape[1] == k:
        return np.ascontiguousarray(dist, dtype=np.float32), np.ascontiguousarray(idx, dtype=np.int64)
    out_d = np.full((len(dist), k), np.inf, np.float32)
    out_i = np.full((len(dist), k), -1, np.int64)
    out_d[:, :dist.shape[1]], out_i[:, :idx.shape[1]] = dist, idx
    return out_d, out_i
