"""Approximate nearest neighbours for large search indexes: an HNSW graph, re-ranked on exact distances.

Why: the exact search (:class:`iss.neighbours.ExactNeighbours`) reads every latent for each query
and the index build computes every picture's leave-one-out neighbours, ``n^2`` distances. At the
ISS collection's 14,000 pictures that is a few milliseconds and seconds; at a million pictures of
288 dimensions a query reads 1.1 GB (about 100 ms) and the build would take hours. Above
``search.approximate_above`` pictures, :class:`~iss.search.index.SimilarityIndex` therefore asks
this module for *candidates* and keeps the rest of its contract.

Which library: faiss (Johnson, Douze & Jegou, "Billion-scale similarity search with GPUs", 2019;
``faiss-cpu``), its ``IndexHNSWFlat``: a Hierarchical Navigable Small World graph (Malkov &
Yashunin, "Efficient and robust approximate nearest neighbor search using Hierarchical Navigable
Small World graphs", IEEE TPAMI 2018). Measured by ``benchmarks/ann.py`` on latents-like data
against hnswlib (the paper's own implementation, same recall, last released in 2023), usearch
(same recall, slower single queries here), faiss IVF (lower recall at the same query time) and
pynndescent (minutes to build, several times the memory). faiss is maintained by Meta with
regular releases, supports adding vectors to a built graph and serializes to bytes, which lets the
index be written atomically beside ``index.npz``.

What stays exact: the graph only proposes ``candidates`` times ``k`` rows; their distances are
recomputed by difference on the centred float32 latents and re-ranked, so every distance the
search reports (the top hits, the stored leave-one-out lists that calibrate "no good match") is
the exact distance of that pair. What is approximate is only which pairs are found: a true
neighbour the graph misses is replaced by the next one (recall@10 >= 0.95 is measured by the
benchmark and pinned by ``tests/search/test_approximate.py``).
"""

from __future__ import annotations

import numpy as np

APPROXIMATE_VERSION = 1  # bump when the graph's layout or its parameters' meaning change: saved graphs are rebuilt
LIBRARY = "faiss-hnsw"


class ApproximateIndexError(Exception):
    """The approximate index cannot be built or read as asked (message says what to do)."""


def _faiss():
    try:
        import faiss
    except ImportError as exc:  # an optional speed-up for large collections; say what fixes it
        raise ApproximateIndexError(
            f"the search index is above search.approximate_above pictures and needs faiss ({exc}); "
            f"pip install faiss-cpu, or set search.approximate_above: 0 to search exactly (slow at this size)"
        ) from None
    return faiss


class ApproximateNeighbours:
    """HNSW candidates over centred latents, re-ranked on exact distances.

    Same contract as :meth:`iss.neighbours.ExactNeighbours.kneighbors`, so that
    :class:`~iss.search.index.SimilarityIndex` can ask either.

    Parameters
    ----------
    m : int, default=32
        Links per node of the graph (HNSW's ``M``; more: better recall, more memory, slower build).
    ef_construction : int, default=100
        Candidate list while building (HNSW's ``efConstruction``).
    ef_search : int, default=64
        Candidate list while searching (``efSearch``; raised to the candidates asked for).
    candidates : int, default=2
        Rows asked of the graph per wanted neighbour, before exact re-ranking.
    block_size : int, default=2048
        Query rows re-ranked at a time (bounds memory).

    Attributes
    ----------
    index_ : faiss.IndexHNSWFlat
    vectors : float32 array, shape (n, d)
        The centred latents the distances are recomputed on (shared, not copied).
    """

    def __init__(self, m: int = 32, ef_construction: int = 100, ef_search: int = 64, candidates: int = 2,
                 block_size: int = 2048):
        self.m, self.ef_construction, self.ef_search = int(m), int(ef_construction), int(ef_search)
        self.candidates, self.block_size = int(candidates), int(block_size)

    library = LIBRARY

    def params(self) -> dict:
        """What a saved graph must match to be reused (with :data:`APPROXIMATE_VERSION`)."""
        return {"library": LIBRARY, "version": APPROXIMATE_VERSION, "m": self.m,
                "ef_construction": self.ef_construction}

    # --- building ---------------------------------------------------------------------------------
    def fit(self, vectors: np.ndarray) -> "ApproximateNeighbours":
        """Build the graph over ``vectors`` (float32, centred; kept by reference for re-ranking)."""
        faiss = _faiss()
        self.vectors = vectors
        self.index_ = faiss.IndexHNSWFlat(vectors.shape[1], self.m)
        self.index_.hnsw.efConstruction = self.ef_construction
        self.index_.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return self

    def extend(self, vectors: np.ndarray) -> None:
        """Insert the rows of ``vectors`` the graph does not hold yet (the last ones; HNSW inserts in place)."""
        have = self.index_.ntotal
        if len(vectors) < have:
            raise ApproximateIndexError(f"the approximate index holds {have} rows but was given {len(vectors)}; "
                                        f"rebuild it")
        if len(vectors) > have:
            self.index_.add(np.ascontiguousarray(vectors[have:], dtype=np.float32))
        self.vectors = vectors

    def to_bytes(self) -> bytes:
        return _faiss().serialize_index(self.index_).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, vectors: np.ndarray, **params) -> "ApproximateNeighbours":
        """A graph written by :meth:`to_bytes`, over the same ``vectors`` (row count checked)."""
        faiss = _faiss()
        self = cls(**params)
        self.index_ = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        if self.index_.ntotal != len(vectors) or self.index_.d != vectors.shape[1]:
            raise ApproximateIndexError(f"saved approximate index holds {self.index_.ntotal} x {self.index_.d}, "
                                        f"the search index {len(vectors)} x {vectors.shape[1]}; it is rebuilt")
        self.vectors = vectors
        return self

    def __len__(self) -> int:
        return int(self.index_.ntotal)

    # --- queries ------------------------------------------------------------------------------------
    def kneighbors(self, X=None, k: int = 10, rows=None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest indexed rows, nearest first, on exact distances.

        Parameters
        ----------
        X : float32 array, shape (m, d), optional
            Query points, already centred. None: the indexed rows themselves (``rows``, default
            all), each left out of its own list by index.
        k : int
        rows : int array, optional

        Returns
        -------
        distances : float32 (m, k), ``inf`` where fewer were found
        indices : int64 (m, k), ``-1`` there
        """
        leave_out = X is None
        if leave_out:
            rows = np.arange(len(self)) if rows is None else np.asarray(rows, dtype=np.int64)
            queries = self.vectors[rows]
        else:
            queries = np.ascontiguousarray(X, dtype=np.float32)
        wanted = max(k * self.candidates, k + 4) + (1 if leave_out else 0)
        wanted = min(wanted, len(self))
        # per call, not set on the shared index: the server queries from several threads
        params = _faiss().SearchParametersHNSW(efSearch=max(self.ef_search, wanted))
        out_d = np.full((len(queries), k), np.inf, np.float32)
        out_i = np.full((len(queries), k), -1, np.int64)
        for start in range(0, len(queries), self.block_size):
            block = slice(start, start + self.block_size)
            q = np.ascontiguousarray(queries[block])
            _, cand = self.index_.search(q, wanted, params=params)
            cand = cand.astype(np.int64)
            if leave_out:
                cand[cand == rows[block, None]] = -1  # a row is never its own neighbour (by index)
            # exact distances by difference (the graph's are from |a|^2+|b|^2-2ab, and only for ordering)
            diff = q[:, None, :] - self.vectors[np.maximum(cand, 0)]
            dist = np.sqrt(np.einsum("mkd,mkd->mk", diff, diff)).astype(np.float32)
            dist[cand < 0] = np.inf
            order = np.lexsort((cand, dist), axis=-1)[:, :k]  # ties by row, as a stable exact sort gives
            d, i = np.take_along_axis(dist, order, axis=1), np.take_along_axis(cand, order, axis=1)
            i[~np.isfinite(d)] = -1
            out_d[block, :d.shape[1]], out_i[block, :i.shape[1]] = d, i
        return out_d, out_i
