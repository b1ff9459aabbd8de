"""Nearest-neighbour index over picture latents, calibrated on the collection itself.

The neighbours are exact and brute force (:class:`iss.neighbours.ExactNeighbours`, the one k-NN
of the package, which says why and how fast); this module adds the picture ids, the stored
leave-one-out lists, their incremental update, the calibration and persistence. From
``approximate_above`` pictures on (``search.approximate_above``), candidates come from an HNSW
graph instead (:mod:`iss.search.approximate`; built as shards by Dask tasks where ``compute.scheduler``
says, :mod:`iss.search.shards`) and are re-ranked on exact distances: every distance
reported stays exact, only a true neighbour the graph misses can be left out (recall@10 >= 0.95,
measured by ``benchmarks/ann.py``). Below it, nothing changes.

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

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iss.artefacts import atomic_path, write_bytes, write_text
from iss.neighbours import ExactNeighbours

log = logging.getLogger(__name__)

INDEX_VERSION = 1
_ARRAYS_FILE = "index.npz"
_META_FILE = "index.json"
_APPROXIMATE_FILE = "approximate.faiss"  # the HNSW graph above approximate_above (iss/search/approximate.py)


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
    """Euclidean nearest neighbours over latents, with leave-one-out calibration.

    Exact brute force up to ``approximate_above`` pictures; from there on, HNSW candidates
    re-ranked on exact distances (the module docstring says what stays exact).

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
        Rows re-ranked on exact distances at a time (bounds memory).
    approximate_above : int, default=0
        From this many pictures on, neighbours are searched through an HNSW graph
        (:class:`iss.search.approximate.ApproximateNeighbours`) and re-ranked on exact distances;
        0: always exact brute force.
    shard_build : iss.search.shards.ShardedBuild, optional
        Where the graph is built: when its scheduler resolves to Dask for the index's size
        (``compute.scheduler`` other than ``auto``), as shards built by Dask tasks
        (:class:`~iss.search.approximate.ShardedNeighbours`); None or ``auto``: one graph, here.
        Not saved: a saved graph of either kind is read back as it is.

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
    approximate_ : ApproximateNeighbours, ShardedNeighbours or None
        The HNSW graph (or its shards) when the index holds ``approximate_above`` pictures or more.
    lists_exact_ : bool
        Whether every stored leave-one-out list was computed exactly (False once a build or an add
        went through the graph).
    """

    def __init__(self, threshold_percentile: float = 99.0, margin: float = 1.0, n_stored: int = 10,
                 block_size: int = 2048, approximate_above: int = 0, *, shard_build=None):
        self.threshold_percentile = threshold_percentile
        self.margin = margin
        self.n_stored = n_stored
        self.block_size = block_size
        self.approximate_above = approximate_above
        self.shard_build = shard_build

    # --- building -----------------------------------------------------------------------------
    def _check_params(self) -> None:
        if not 0 < float(self.threshold_percentile) <= 100:
            raise SearchIndexError(f"threshold_percentile={self.threshold_percentile!r}: expected a percentile in (0, 100]")
        if not float(self.margin) > 0:
            raise SearchIndexError(f"margin={self.margin!r}: expected a positive factor (1 is typical)")
        if int(self.n_stored) < 1:
            raise SearchIndexError(f"n_stored={self.n_stored!r}: expected at least 1")
        if isinstance(self.approximate_above, bool) or int(self.approximate_above) < 0:
            raise SearchIndexError(f"approximate_above={self.approximate_above!r}: expected a number of pictures "
                                   f"(0 = always exact)")

    @property
    def uses_approximate(self) -> bool:
        """Whether this index (at its size) searches through the HNSW graph."""
        limit = int(self.approximate_above)
        return limit > 0 and len(self) >= limit

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
        self.approximate_ = None
        self._prepare()
        self.knn_distances_, self.knn_indices_ = self._neighbours.kneighbors(None, int(self.n_stored))
        self.lists_exact_ = not self.uses_approximate
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
        self._prepare()  # above approximate_above: the new rows are inserted into the graph (or it is built)
        # new rows: their own lists, over every row (through the graph above approximate_above)
        new_d, new_i = self._neighbours.kneighbors(None, s, rows=np.arange(n_old, len(self.ids_)))
        self.lists_exact_ = self.lists_exact_ and not self.uses_approximate
        # old rows: their nearest among the new rows, exactly (brute force over the new rows only),
        # merged into their lists (new-new pairs are covered by the new rows' own lists)
        among_new = ExactNeighbours(matrix[keep], exact=True, center=self.center_, block_size=self.block_size)
        cand_d, cand_i = among_new.kneighbors(self.latents_[:n_old], min(s, len(keep)))
        merged_d = np.concatenate([self.knn_distances_, cand_d], axis=1)
        merged_i = np.concatenate([self.knn_indices_, cand_i + n_old], axis=1)
        order = np.argsort(merged_d, axis=1, kind="stable")[:, :s]
        self.knn_distances_ = np.concatenate([np.take_along_axis(merged_d, order, axis=1), new_d])
        self.knn_indices_ = np.concatenate([np.take_along_axis(merged_i, order, axis=1), new_i])
        self._calibrate()
        return len(keep)

    def _prepare(self) -> None:
        self._neighbours = ExactNeighbours(self.latents_, exact=True, center=self.center_, block_size=self.block_size)
        self._row_of = {pid: i for i, pid in enumerate(self.ids_)}
        if not self.uses_approximate:
            self.approximate_ = None
            return
        # the graph indexes the same centred vectors the exact distances are recomputed on
        vectors = self._neighbours.vectors
        if getattr(self, "approximate_", None) is not None and len(self.approximate_) <= len(vectors):
            self.approximate_.extend(vectors)  # incremental add: HNSW inserts the new rows in place
        else:
            started = time.perf_counter()
            self.approximate_ = self._new_approximate().fit(vectors)
            log.info("approximate search index (%s) over %d pictures built in %.1f s", self.approximate_.library,
                     len(vectors), time.perf_counter() - started)
        self._neighbours = self.approximate_

    def _new_approximate(self, saved: dict | None = None):
        """An unbuilt graph: of the kind ``saved`` (a saved graph's metadata) says, else the kind
        ``shard_build`` asks for at this size (shards on Dask, else one graph)."""
        from iss.search.approximate import SHARDED_LIBRARY, ApproximateNeighbours, ShardedNeighbours

        build = self.shard_build
        if saved is not None and saved.get("library") == SHARDED_LIBRARY:
            return ShardedNeighbours(shard_size=saved.get("shard_size", 1), builder=build, block_size=self.block_size)
        if saved is None and build is not None and build.scheduler_for(len(self)) != "inprocess":
            return ShardedNeighbours(shard_size=build.shard_size, builder=build, block_size=self.block_size)
        return ApproximateNeighbours(block_size=self.block_size)

    def _calibrate(self) -> None:
        nn = self.knn_distances_[:, 0]
        self.loo_sorted_ = np.sort(nn[np.isfinite(nn)]).astype(np.float32)
        self.threshold_ = float(np.percentile(self.loo_sorted_, self.threshold_percentile) * self.margin)

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
        if self.approximate_ is not None:  # the graph works on centred vectors (ExactNeighbours centres itself)
            return Neighbours(*self._neighbours.kneighbors(matrix - self.center_, k))
        return Neighbours(*self._neighbours.kneighbors(matrix, k))

    def neighbours_of(self, picture_id: str, k: int = 12) -> Neighbours:
        """Nearest other pictures of an indexed picture (stored ones when ``k <= n_stored``)."""
        row = self.row_of(picture_id)
        if k <= self.n_stored:
            d, i = self.knn_distances_[row, :k], self.knn_indices_[row, :k]
            keep = i >= 0
            return Neighbours(d[keep][None, :], i[keep][None, :])
        d, i = self._neighbours.kneighbors(None, min(k, len(self.ids_) - 1), rows=[row])
        return Neighbours(d, i)

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
                "n_stored": int(self.n_stored), "block_size": int(self.block_size),
                "approximate_above": int(self.approximate_above)}

    def save(self, folder: str | Path, extra_meta: dict | None = None) -> Path:
        """Write ``index.npz`` and ``index.json`` into ``folder`` (atomically, file by file), and above
        ``approximate_above`` the HNSW graph ``approximate.faiss`` (removed when the index is exact)."""
        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / _ARRAYS_FILE) as partial, open(partial, "wb") as f:
            np.savez(f, ids=self.ids_, latents=self.latents_, center=self.center_,
                     knn_distances=self.knn_distances_, knn_indices=self.knn_indices_)
        approximate = None
        if self.approximate_ is not None:
            write_bytes(folder / _APPROXIMATE_FILE, self.approximate_.to_bytes())
            approximate = {**self.approximate_.params(), "n": len(self.approximate_)}
        else:
            (folder / _APPROXIMATE_FILE).unlink(missing_ok=True)
        meta = {"version": INDEX_VERSION, "params": self.params(), "n": len(self.ids_), "dim": self.dim,
                "threshold": self.threshold_, "built_at": getattr(self, "built_at_", time.time()),
                "lists_exact": bool(getattr(self, "lists_exact_", True)), "approximate": approximate,
                **(extra_meta or {})}
        write_text(folder / _META_FILE, json.dumps(meta, indent=2))
        self.meta_ = meta
        return folder

    @classmethod
    def load(cls, folder: str | Path, approximate_above: int | None = None, shard_build=None) -> "SimilarityIndex":
        """Read an index written by :meth:`save`.

        Parameters
        ----------
        folder : path
        approximate_above : int, optional
            Overrides the saved setting (the config's ``search.approximate_above``). Above it, the
            saved HNSW graph is read when its library version and parameters match the current
            ones and it holds every picture; otherwise it is rebuilt (logged), which changes no
            stored list. Whether those lists were computed exactly is ``lists_exact_``.
        shard_build : ShardedBuild, optional
            Where a graph that must be rebuilt is built (see the class). A saved graph is read as
            the kind it was saved as (one graph or shards), whatever the scheduler now.
        """
        folder = Path(folder)
        meta_path, arrays_path = folder / _META_FILE, folder / _ARRAYS_FILE
        if not meta_path.is_file() or not arrays_path.is_file():
            raise SearchIndexError(f"no search index in {folder}; build it with `iss index` (or `iss serve`, "
                              f"which builds it when missing)")
        meta = json.loads(meta_path.read_text())
        if meta.get("version") != INDEX_VERSION:
            raise SearchIndexError(f"{meta_path}: index version {meta.get('version')} but this code reads "
                              f"{INDEX_VERSION}; delete the folder to rebuild it")
        params = dict(meta["params"])
        params.setdefault("approximate_above", 0)  # indexes saved before the approximate search
        if approximate_above is not None:
            params["approximate_above"] = int(approximate_above)
        index = cls(**params, shard_build=shard_build)
        with np.load(arrays_path, allow_pickle=False) as arrays:
            index.ids_ = arrays["ids"].astype(str)
            index.latents_ = arrays["latents"].astype(np.float32)
            index.center_ = arrays["center"].astype(np.float32)
            index.knn_distances_ = arrays["knn_distances"].astype(np.float32)
            index.knn_indices_ = arrays["knn_indices"].astype(np.int64)
        index.built_at_ = meta.get("built_at")
        index.meta_ = meta
        index.lists_exact_ = bool(meta.get("lists_exact", True))
        index.approximate_ = index._read_approximate(folder, meta.get("approximate"))
        # True when the graph was rebuilt here: save() writes it so that the next load reads it
        index.approximate_rebuilt_ = index.uses_approximate and index.approximate_ is None
        index._prepare()
        index._calibrate()
        return index

    def _read_approximate(self, folder: Path, saved: dict | None):
        """The saved HNSW graph when it can be reused as is, else None (``_prepare`` then rebuilds it)."""
        if not self.uses_approximate:
            return None
        path = folder / _APPROXIMATE_FILE
        fresh = self._new_approximate(saved)
        if saved is None or not path.is_file():
            why = "missing"
        elif {k: saved.get(k) for k in fresh.params()} != fresh.params():
            why = f"saved with {saved}, now {fresh.params()}"
        elif saved.get("n") != len(self.ids_):
            why = f"holds {saved.get('n')} pictures, the index {len(self.ids_)}"
        else:
            from iss.search.approximate import ApproximateIndexError

            try:  # checked against the latents' shape; _prepare hands it the centred vectors
                return type(fresh).from_bytes(path.read_bytes(), self.latents_, **fresh.init_params())
            except (ApproximateIndexError, RuntimeError) as exc:  # faiss raises RuntimeError on a damaged file
                why = str(exc)
        log.info("approximate search index %s: %s; rebuilding it", path, why)
        return None
