"""Exact nearest-neighbour index over picture latents, calibrated on the collection itself.

Why brute force: at the sizes this project targets (2,000 demo pictures, ~14,000 for the
ISS collection, 288-dimensional latents) one query is a (1 x d) @ (d x n) product, well under
a millisecond with BLAS, and exact. ``benchmarks/search.py`` measures it against
scikit-learn's ``NearestNeighbors`` and the approximate ``pynndescent`` index (installed with
umap-learn): the approximate index only pays off for much larger collections, and it cannot
be updated in place, so the exact index is the default and the only one kept here.

Calibration (why "no good match" can be decided at all): for every collection picture the
index keeps the distances to its ``n_stored`` nearest *other* pictures (leave-one-out).
The leave-one-out nearest-neighbour distance of picture ``i`` is exactly what a query would
see if ``i`` were a new picture taken from the same source: so the distribution of these
distances is the collection's own answer to "how far is a genuine new picture from its
closest match?". A query whose nearest match is farther than a high percentile of that
distribution has no good match; the per-result confidence is the share of collection pictures
whose own nearest neighbour is at least that far (a conformal p-value: for a genuine new
picture it is uniform on [0, 1], so the 99th percentile rejects about 1 % of them).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iss.artefacts import atomic_path, write_text

INDEX_VERSION = 1
_SINGLE_THREAD_QUERIES = 32


@functools.lru_cache(maxsize=1)
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()

_ARRAYS_FILE = "index.npz"
_META_FILE = "index.json"


class SearchIndexError(Exception):
    """The index cannot be built, loaded or queried as asked (message says what to do)."""


@dataclass(frozen=True)
class Neighbours:
    """Result of :meth:`SimilarityIndex.query`.

    Attributes
    ----------
    distances : float32 array, shape (m, k)
        Euclidean distances, nearest first.
    indices : int64 array, shape (m, k)
        Rows of the index (``index.ids[indices]`` gives picture ids).
    """

    distances: np.ndarray
    indices: np.ndarray


def _as_matrix(latents, name="latents") -> np.ndarray:
    matrix = np.asarray(latents, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2:
        matrix = matrix.reshape(len(matrix), -1)
    if not np.isfinite(matrix).all():
        bad = int(np.flatnonzero(~np.isfinite(matrix).all(axis=1))[0])
        raise SearchIndexError(f"{name} row {bad} holds NaN or infinite values; re-encode the pictures")
    return matrix


class SimilarityIndex:
    """Exact Euclidean nearest neighbours over latents, with leave-one-out calibration.

    Parameters
    ----------
    threshold_percentile : float, default=99.0
        Percentile of the leave-one-out nearest-neighbour distances that a good match must not
        exceed (before ``margin``).
    margin : float, default=1.0
        Multiplies the percentile: the threshold is ``percentile * margin``. The search uses 1
        (the threshold is then where :meth:`confidence` falls to ``1 - threshold_percentile /
        100``); a margin above 1 would call pictures farther than any seen so far good matches.
    n_stored : int, default=10
        Leave-one-out neighbours kept per picture (for calibration, near-duplicates, outliers
        and the neighbours on a picture page).
    block_size : int, default=2048
        Rows per distance block: bounds memory to ``block_size * n`` floats.

    Attributes
    ----------
    ids_ : str array, shape (n,)
    latents_ : float32 array, shape (n, d)
        As given (flattened).
    center_ : float32 array, shape (d,)
        Mean latent at build time; subtracted before distances, which keeps
        ``|a|^2 + |b|^2 - 2ab`` accurate in float32 (distances do not change).
    knn_distances_ : float32 array, shape (n, n_stored)
        Leave-one-out distances to the nearest other pictures, nearest first (``inf`` when
        the collection has fewer pictures).
    knn_indices_ : int64 array, shape (n, n_stored)
        Their rows (``-1`` where missing).
    threshold_ : float
        "No good match" distance threshold.
    """

    def __init__(self, threshold_percentile: float = 99.0, margin: float = 1.0, n_stored: int = 10,
                 block_size: int = 2048):
        self.threshold_percentile = threshold_percentile
        self.margin = margin
        self.n_stored = n_stored
        self.block_size = block_size

    # --- building -----------------------------------------------------------------------------
    def _check_params(self) -> None:
        if not 0 < float(self.threshold_percentile) <= 100:
            raise SearchIndexError(f"threshold_percentile={self.threshold_percentile!r}: expected a percentile in (0, 100]")
        if not float(self.margin) > 0:
            raise SearchIndexError(f"margin={self.margin!r}: expected a positive factor (1 is typical)")
        if int(self.n_stored) < 1:
            raise SearchIndexError(f"n_stored={self.n_stored!r}: expected at least 1")

    def build(self, ids: Sequence[str], latents) -> "SimilarityIndex":
        """Index ``latents`` (one row per id) and calibrate on them.

        Parameters
        ----------
        ids : sequence of str, length n
            Unique picture ids.
        latents : array-like, shape (n, d) or (n, ...)
            Flattened to (n, d) float32.

        Returns
        -------
        self
        """
        self._check_params()
        matrix = _as_matrix(latents)
        ids = np.asarray([str(i) for i in ids], dtype=str)
        if len(ids) != len(matrix):
            raise SearchIndexError(f"build got {len(ids)} ids for {len(matrix)} latent rows")
        if len(ids) < 2:
            raise SearchIndexError(f"an index needs at least 2 pictures to calibrate, got {len(ids)}")
        if len(np.unique(ids)) != len(ids):
            raise SearchIndexError("build got repeated picture ids; each picture must appear once")
        self.ids_ = ids
        self.latents_ = matrix
        self.center_ = matrix.mean(axis=0).astype(np.float32)
        self._prepare()
        n, s = len(ids), int(self.n_stored)
        self.knn_distances_ = np.full((n, s), np.inf, np.float32)
        self.knn_indices_ = np.full((n, s), -1, np.int64)
        for start in range(0, n, self.block_size):
            rows = np.arange(start, min(n, start + self.block_size))
            dist, idx = self._knn(self._vectors[rows], s, exclude_rows=rows)
            self.knn_distances_[rows], self.knn_indices_[rows] = dist, idx
        self._calibrate()
        self.built_at_ = time.time()
        return self

    def add(self, ids: Sequence[str], latents) -> int:
        """Add new pictures, updating every picture's stored neighbours exactly.

        Ids already indexed are skipped. The result is the same as building from scratch on
        the union (same neighbours, same calibration), except that the centring vector stays
        the one of the first build (distances do not depend on it).

        Returns
        -------
        int
            Number of pictures added.
        """
        self._check_fitted()
        matrix = _as_matrix(latents)
        ids = np.asarray([str(i) for i in ids], dtype=str)
        if len(ids) != len(matrix):
            raise SearchIndexError(f"add got {len(ids)} ids for {len(matrix)} latent rows")
        if matrix.shape[1] != self.latents_.shape[1]:
            raise SearchIndexError(f"add got latents of dimension {matrix.shape[1]}, the index holds "
                              f"{self.latents_.shape[1]}; rebuild the index for the new model")
        _, first = np.unique(ids, return_index=True)
        keep = np.array([i for i in sorted(first) if ids[i] not in self._row_of], dtype=np.int64)
        if len(keep) == 0:
            return 0
        n_old, s = len(self.ids_), int(self.n_stored)
        self.ids_ = np.concatenate([self.ids_, ids[keep]])
        self.latents_ = np.concatenate([self.latents_, matrix[keep]])
        self._prepare()
        n = len(self.ids_)
        self.knn_distances_ = np.concatenate([self.knn_distances_, np.full((len(keep), s), np.inf, np.float32)])
        self.knn_indices_ = np.concatenate([self.knn_indices_, np.full((len(keep), s), -1, np.int64)])
        for start in range(n_old, n, self.block_size):
            rows = np.arange(start, min(n, start + self.block_size))
            d2 = self._squared_distances(self._vectors[rows])  # (b, n), new rows against everything
            d2[np.arange(len(rows)), rows] = np.inf
            # New rows: their own lists, from scratch.
            new_d, new_i = self._top_k(d2, s)
            new_d = self._exact_distances(rows, new_i, new_d)
            order = np.argsort(new_d, axis=1, kind="stable")
            self.knn_distances_[rows] = np.take_along_axis(new_d, order, axis=1)
            self.knn_indices_[rows] = np.take_along_axis(new_i, order, axis=1)
            # Old rows: merge these new candidates into their lists (new-new pairs are covered
            # by the new rows' own lists, built over every row). The fast formula ranks the
            # candidates; the best s + slack are recomputed exactly before the final choice.
            candidates = np.sqrt(d2[:, :n_old].T)  # (n_old, b)
            cand_idx = np.broadcast_to(rows, candidates.shape)
            merged_d = np.concatenate([self.knn_distances_[:n_old], candidates], axis=1)
            merged_i = np.concatenate([self.knn_indices_[:n_old], cand_idx], axis=1)
            width = min(merged_d.shape[1], s + 4)
            order = np.argsort(merged_d, axis=1, kind="stable")[:, :width]
            best_d = np.take_along_axis(merged_d, order, axis=1)
            best_i = np.take_along_axis(merged_i, order, axis=1)
            best_d = self._exact_distances(np.arange(n_old), best_i, best_d)
            order = np.argsort(best_d, axis=1, kind="stable")[:, :s]
            self.knn_distances_[:n_old] = np.take_along_axis(best_d, order, axis=1)
            self.knn_indices_[:n_old] = np.take_along_axis(best_i, order, axis=1)
        self._calibrate()
        return len(keep)

    def _prepare(self) -> None:
        self._vectors = np.ascontiguousarray(self.latents_ - self.center_, dtype=np.float32)
        self._sq_norms = np.einsum("ij,ij->i", self._vectors, self._vectors)
        self._row_of = {pid: i for i, pid in enumerate(self.ids_)}

    def _exact_distances(self, rows: np.ndarray, neighbours: np.ndarray, distances: np.ndarray) -> np.ndarray:
        """``distances`` (r, w) recomputed exactly between ``rows`` and ``neighbours`` (-1 = missing, kept inf)."""
        out = np.array(distances, dtype=np.float32, copy=True)
        valid = neighbours >= 0
        left = np.broadcast_to(np.asarray(rows)[:, None], neighbours.shape)[valid]
        diff = self._vectors[left] - self._vectors[neighbours[valid]]
        out[valid] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        return out

    def _calibrate(self) -> None:
        nn = self.knn_distances_[:, 0]
        self.loo_sorted_ = np.sort(nn[np.isfinite(nn)]).astype(np.float32)
        self.threshold_ = float(np.percentile(self.loo_sorted_, self.threshold_percentile) * self.margin)

    # --- distances ----------------------------------------------------------------------------
    def _squared_distances(self, vectors: np.ndarray) -> np.ndarray:
        """Squared distances from centred ``vectors`` (m, d) to every row, shape (m, n)."""
        sq = np.einsum("ij,ij->i", vectors, vectors)
        # (n, d) @ (d, m) then transposed: for a few queries this is a BLAS matrix-vector product,
        # ~10x faster than (m, d) @ (d, n) with the big matrix transposed (measured at 14,000 x 288)
        d2 = sq[:, None] + self._sq_norms[None, :] - 2.0 * (self._vectors @ vectors.T).T
        np.maximum(d2, 0.0, out=d2)
        return d2

    def _top_k(self, d2: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k smallest entries per row of ``d2`` (m, n), as exact distances and rows."""
        n = d2.shape[1]
        k_eff = min(k, n)
        if k_eff < n:
            part = np.argpartition(d2, k_eff - 1, axis=1)[:, :k_eff]
        else:
            part = np.broadcast_to(np.arange(n), d2.shape).copy()
        part_d2 = np.take_along_axis(d2, part, axis=1)
        order = np.argsort(part_d2, axis=1, kind="stable")
        idx = np.take_along_axis(part, order, axis=1)
        dist = np.sqrt(np.take_along_axis(part_d2, order, axis=1))
        dist[~np.isfinite(dist)] = np.inf
        idx = np.where(np.isfinite(dist), idx, -1)
        out_d = np.full((len(d2), k), np.inf, np.float32)
        out_i = np.full((len(d2), k), -1, np.int64)
        out_d[:, :k_eff], out_i[:, :k_eff] = dist, idx
        return out_d, out_i

    def _knn(self, vectors: np.ndarray, k: int, exclude_rows=None) -> tuple[np.ndarray, np.ndarray]:
        """k nearest rows of centred ``vectors``: ranked by the fast formula with a little slack,
        then recomputed exactly (the expanded formula loses digits for close pairs) and re-ranked."""
        d2 = self._squared_distances(vectors)
        if exclude_rows is not None:
            d2[np.arange(len(vectors)), exclude_rows] = np.inf
        dist, idx = self._top_k(d2, k + 4)
        valid = idx >= 0
        diff = np.repeat(vectors, idx.shape[1], axis=0).reshape(len(vectors), idx.shape[1], -1)[valid] \
            - self._vectors[idx[valid]]
        dist[valid] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        order = np.argsort(dist, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(dist, order, axis=1), np.take_along_axis(idx, order, axis=1)

    # --- queries ------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "ids_"):
            raise SearchIndexError("this SimilarityIndex is not built yet; call build(ids, latents) or load(folder)")

    def __len__(self) -> int:
        return len(self.ids_) if hasattr(self, "ids_") else 0

    def __contains__(self, picture_id: str) -> bool:
        return hasattr(self, "_row_of") and picture_id in self._row_of

    @property
    def dim(self) -> int:
        """Latent dimension d."""
        self._check_fitted()
        return int(self.latents_.shape[1])

    def row_of(self, picture_id: str) -> int:
        """Row of ``picture_id``; KeyError naming it when it is not indexed."""
        try:
            return self._row_of[picture_id]
        except (KeyError, AttributeError):
            raise KeyError(f"picture {picture_id!r} is not in the search index") from None

    def query(self, latents, k: int = 12) -> Neighbours:
        """The ``k`` nearest indexed pictures of each query latent.

        Parameters
        ----------
        latents : array-like, shape (m, d) or (d,)
        k : int, default=12

        Returns
        -------
        Neighbours
            ``distances`` and ``indices`` of shape (m, min(k, n)).
        """
        self._check_fitted()
        matrix = _as_matrix(latents, "query latents")
        if matrix.shape[1] != self.dim:
            raise SearchIndexError(f"query latents have dimension {matrix.shape[1]}, the index holds {self.dim}; "
                              f"encode with the model the index was built from")
        k = max(1, min(int(k), len(self.ids_)))
        vectors = matrix - self.center_
        if len(vectors) <= _SINGLE_THREAD_QUERIES:
            # A few queries are matrix-vector products: one BLAS thread is much faster than waking a
            # pool (0.3 ms instead of 3-8 ms at 14,000 x 288 on a busy 2-core machine), and a server
            # answers concurrent requests on its own threads anyway.
            with _blas_controller().limit(limits=1, user_api="blas"):
                return Neighbours(*self._knn(vectors, k))
        out_d, out_i = [], []
        for start in range(0, len(vectors), self.block_size):
            d, i = self._knn(vectors[start:start + self.block_size], k)
            out_d.append(d)
            out_i.append(i)
        return Neighbours(np.concatenate(out_d), np.concatenate(out_i))

    def neighbours_of(self, picture_id: str, k: int = 12) -> Neighbours:
        """Nearest other pictures of an indexed picture (stored ones when ``k <= n_stored``)."""
        row = self.row_of(picture_id)
        if k <= self.n_stored:
            d, i = self.knn_distances_[row, :k], self.knn_indices_[row, :k]
            keep = i >= 0
            return Neighbours(d[keep][None, :], i[keep][None, :])
        found = self.query(self.latents_[row], k=k + 1)
        keep = found.indices[0] != row
        return Neighbours(found.distances[:, keep][:, :k], found.indices[:, keep][:, :k])

    def confidence(self, distances) -> np.ndarray:
        """Share of collection pictures whose own nearest neighbour is at least this far.

        ``1 - ECDF(d)`` of the leave-one-out nearest-neighbour distances: about 1 for a
        near-copy, about 0.5 for a typical new picture, 0 beyond every collection picture.
        """
        self._check_fitted()
        d = np.asarray(distances, dtype=np.float32)
        below = np.searchsorted(self.loo_sorted_, d, side="left")
        return (1.0 - below / len(self.loo_sorted_)).astype(np.float32)

    # --- collection-level lists ------------------------------------------------------------------
    def near_duplicate_pairs(self, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pairs of indexed pictures closer than ``threshold``.

        Taken from the stored neighbour lists, so a picture with more than ``n_stored``
        near-duplicates lists its ``n_stored`` closest ones.

        Returns
        -------
        rows_a, rows_b : int64 arrays, shape (p,)
            ``rows_a < rows_b``, sorted by distance.
        distances : float32 array, shape (p,)
        """
        self._check_fitted()
        mask = (self.knn_distances_ <= threshold) & (self.knn_indices_ >= 0)
        a = np.broadcast_to(np.arange(len(self.ids_))[:, None], mask.shape)[mask]
        b = self.knn_indices_[mask]
        d = self.knn_distances_[mask]
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        pairs, first = np.unique(np.stack([lo, hi], axis=1), axis=0, return_index=True)
        d = d[first]
        order = np.lexsort((pairs[:, 1], pairs[:, 0], d))
        return pairs[order, 0], pairs[order, 1], d[order]

    def outlier_scores(self, k: int = 5) -> np.ndarray:
        """Mean distance to the ``k`` nearest other pictures, shape (n,): large = far from everything.

        The mean over k (rather than the single nearest) keeps a pair of odd pictures that
        resemble only each other among the outliers.
        """
        self._check_fitted()
        k = max(1, min(int(k), self.n_stored))
        d = self.knn_distances_[:, :k]
        finite = np.where(np.isfinite(d), d, np.nan)
        return np.nanmean(finite, axis=1).astype(np.float32)

    # --- persistence --------------------------------------------------------------------------
    def params(self) -> dict:
        return {"threshold_percentile": float(self.threshold_percentile), "margin": float(self.margin),
                "n_stored": int(self.n_stored), "block_size": int(self.block_size)}

    def save(self, folder: str | Path, extra_meta: dict | None = None) -> Path:
        """Write ``index.npz`` and ``index.json`` into ``folder`` (atomically, file by file)."""
        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / _ARRAYS_FILE) as partial, open(partial, "wb") as f:
            np.savez(f, ids=self.ids_, latents=self.latents_, center=self.center_,
                     knn_distances=self.knn_distances_, knn_indices=self.knn_indices_)
        meta = {"version": INDEX_VERSION, "params": self.params(), "n": len(self.ids_), "dim": self.dim,
                "threshold": self.threshold_, "built_at": getattr(self, "built_at_", time.time()),
                **(extra_meta or {})}
        write_text(folder / _META_FILE, json.dumps(meta, indent=2))
        self.meta_ = meta
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "SimilarityIndex":
        """Read an index written by :meth:`save`."""
        folder = Path(folder)
        meta_path, arrays_path = folder / _META_FILE, folder / _ARRAYS_FILE
        if not meta_path.is_file() or not arrays_path.is_file():
            raise SearchIndexError(f"no search index in {folder}; build it with `iss index` (or `iss serve`, "
                              f"which builds it when missing)")
        meta = json.loads(meta_path.read_text())
        if meta.get("version") != INDEX_VERSION:
            raise SearchIndexError(f"{meta_path}: index version {meta.get('version')} but this code reads "
                              f"{INDEX_VERSION}; delete the folder to rebuild it")
        index = cls(**meta["params"])
        with np.load(arrays_path, allow_pickle=False) as arrays:
            index.ids_ = arrays["ids"].astype(str)
            index.latents_ = arrays["latents"].astype(np.float32)
            index.center_ = arrays["center"].astype(np.float32)
            index.knn_distances_ = arrays["knn_distances"].astype(np.float32)
            index.knn_indices_ = arrays["knn_indices"].astype(np.int64)
        index.built_at_ = meta.get("built_at")
        index.meta_ = meta
        index._prepare()
        index._calibrate()
        return index
