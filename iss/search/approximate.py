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

Two kinds of graph, with one contract: :class:`ApproximateNeighbours`, one graph built in this
process on every core (``compute.scheduler: auto``), and :class:`ShardedNeighbours`, one graph per
shard of ``search.shard_size`` consecutive rows, each built by a Dask task on one thread
(:mod:`iss.search.shards`; the same shards on any number of workers) and asked together.
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

    def init_params(self) -> dict:
        """The constructor's arguments: a graph read back (:meth:`from_bytes`) is set up as this one."""
        return {"m": self.m, "ef_construction": self.ef_construction, "ef_search": self.ef_search,
                "candidates": self.candidates, "block_size": self.block_size}

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
            cand = self._candidates(q, wanted, params)
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

    def _candidates(self, queries: np.ndarray, wanted: int, params) -> np.ndarray:
        """Rows (int64, ``-1`` for none) the graph proposes for each query, ``wanted`` of them."""
        return self.index_.search(queries, wanted, params=params)[1].astype(np.int64)


# --- sharded: one HNSW graph per shard of rows, built as Dask tasks (iss/search/shards.py) -----------

SHARDED_LIBRARY = "faiss-hnsw-sharded"
SHARD_ROWS = 100_000  # search.shard_size's default; README "Search at scale" says why


def shard_bounds(n: int, shard_size: int, start: int = 0) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive shards of ``shard_size`` rows over rows ``start`` to ``n``."""
    return [(a, min(a + shard_size, n)) for a in range(start, n, shard_size)]


def build_shard(vectors: np.ndarray, m: int, ef_construction: int) -> bytes:
    """The serialized HNSW graph (faiss ``serialize_index``) of ``vectors``, built on one thread.

    Why one thread: faiss inserts the points of a multi-threaded ``add`` in an order that depends
    on the threads' timing, so two builds of the same rows differ; on one thread (and faiss's fixed
    level seed) a shard is the same bytes on any worker, in any process, on every retry. The
    parallelism comes from building shards side by side instead.
    """
    faiss = _faiss()
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # this thread's OpenMP setting only: other threads keep theirs
    try:
        index = faiss.IndexHNSWFlat(vectors.shape[1], m)
        index.hnsw.efConstruction = ef_construction
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    finally:
        faiss.omp_set_num_threads(threads)
    return faiss.serialize_index(index).tobytes()


def build_shards_here(vectors: np.ndarray, bounds: list[tuple[int, int]], m: int, ef_construction: int,
                      ) -> list[bytes]:
    """:func:`build_shard` of every shard, one after the other in this process."""
    return [build_shard(vectors[start:stop], m, ef_construction) for start, stop in bounds]


class ShardedNeighbours(ApproximateNeighbours):
    """HNSW graphs over consecutive shards of the rows, asked together, re-ranked on exact distances.

    Every shard proposes candidates for a query; the best ``candidates * k`` of them (by the graphs'
    own distances, as faiss ``IndexShards`` merges) are re-ranked exactly as by
    :class:`ApproximateNeighbours`, so the contract (exact distances, ``-1``/``inf`` padding, a row
    never its own neighbour) is the same. Why shards: each is built by its own task (a Dask worker,
    :mod:`iss.search.shards`) from its rows alone, and the shards depend only on ``shard_size``, never on
    the number of workers, so the index is the same wherever it was built. Why a plain merge and not
    ``IndexShards``: measured as fast (0.24 ms against 0.22 ms for 2 shards of 50,000), and the
    search parameters stay per call (``IndexShards`` would need ``efSearch`` set on the shared
    shards, which the server's threads would race on).

    Parameters
    ----------
    shard_size : int, default=SHARD_ROWS
        Rows per shard (the last may hold fewer; new pictures fill it, then start new shards).
    builder : callable, optional
        ``builder(vectors, bounds, m, ef_construction) -> list of bytes``, one serialized graph per
        shard in order (:class:`iss.search.shards.ShardedBuild` runs them as Dask tasks); default
        :func:`build_shards_here`.
    **params
        As :class:`ApproximateNeighbours`.

    Attributes
    ----------
    shards_ : list of faiss.IndexHNSWFlat
    starts_ : int64 array
        First row of each shard.
    """

    library = SHARDED_LIBRARY

    def __init__(self, shard_size: int = SHARD_ROWS, builder=None, **params):
        super().__init__(**params)
        self.shard_size, self.builder = int(shard_size), builder
        if self.shard_size < 1:
            raise ApproximateIndexError(f"shard_size={shard_size!r}: expected at least 1 row a shard")

    def init_params(self) -> dict:
        return {**super().init_params(), "shard_size": self.shard_size, "builder": self.builder}

    def params(self) -> dict:
        return {**super().params(), "library": SHARDED_LIBRARY, "shard_size": self.shard_size}

    def fit(self, vectors: np.ndarray) -> "ShardedNeighbours":
        """Build one graph per shard of ``vectors`` (float32, centred; kept by reference for re-ranking)."""
        bounds = shard_bounds(len(vectors), self.shard_size)
        blobs = (self.builder or build_shards_here)(vectors, bounds, self.m, self.ef_construction)
        if len(blobs) != len(bounds):
            raise ApproximateIndexError(f"the shard builder returned {len(blobs)} graphs for {len(bounds)} shards")
        self._set_shards([_faiss().deserialize_index(np.frombuffer(blob, dtype=np.uint8)) for blob in blobs])
        self.vectors = vectors
        return self

    def _set_shards(self, shards: list) -> None:
        self.shards_ = list(shards)
        sizes = np.array([shard.ntotal for shard in self.shards_], dtype=np.int64)
        self.starts_ = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

    def extend(self, vectors: np.ndarray) -> None:
        """Insert the rows not held yet: the last shard is filled up to ``shard_size``, then new shards
        are built here (an update is small; the layout stays the one a rebuild would have)."""
        have = len(self)
        if len(vectors) < have:
            raise ApproximateIndexError(f"the approximate index holds {have} rows but was given {len(vectors)}; "
                                        f"rebuild it")
        last = self.shards_[-1] if self.shards_ else None
        if last is not None and last.ntotal < self.shard_size and len(vectors) > have:
            take = min(self.shard_size - last.ntotal, len(vectors) - have)
            last.add(np.ascontiguousarray(vectors[have:have + take], dtype=np.float32))
            have += take
        faiss = _faiss()
        new = [faiss.deserialize_index(np.frombuffer(blob, dtype=np.uint8)) for blob in
               build_shards_here(vectors, shard_bounds(len(vectors), self.shard_size, have), self.m,
                                 self.ef_construction)]
        self._set_shards(self.shards_ + new)
        self.vectors = vectors

    def to_bytes(self) -> bytes:
        """Every shard's serialized graph, in order, in one uncompressed ``.npz``."""
        import io

        faiss, buffer = _faiss(), io.BytesIO()
        np.savez(buffer, shard_size=np.int64(self.shard_size),
                 **{f"graph_{i:05d}": faiss.serialize_index(shard) for i, shard in enumerate(self.shards_)})
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, vectors: np.ndarray, **params) -> "ShardedNeighbours":
        """Shards written by :meth:`to_bytes`, over the same ``vectors`` (row count checked)."""
        import io
        import zipfile

        faiss = _faiss()
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                names = sorted(name for name in arrays.files if name.startswith("graph_"))
                shards = [faiss.deserialize_index(arrays[name]) for name in names]
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise ApproximateIndexError(f"saved sharded approximate index unreadable ({exc}); it is rebuilt") from None
        self = cls(**params)
        self._set_shards(shards)
        dims = {shard.d for shard in shards}
        if len(self) != len(vectors) or dims != {vectors.shape[1]}:
            raise ApproximateIndexError(f"saved approximate index holds {len(self)} x {sorted(dims)}, the search index "
                                        f"{len(vectors)} x {vectors.shape[1]}; it is rebuilt")
        self.vectors = vectors
        return self

    def __len__(self) -> int:
        return int(sum(shard.ntotal for shard in self.shards_))

    def _candidates(self, queries: np.ndarray, wanted: int, params) -> np.ndarray:
        """Each shard's ``wanted`` candidates, the best ``wanted`` of all by the graphs' distances."""
        found_d, found_i = [], []
        for start, shard in zip(self.starts_, self.shards_):
            d, i = shard.search(queries, min(wanted, int(shard.ntotal)), params=params)
            found_i.append(np.where(i >= 0, i.astype(np.int64) + start, -1))
            found_d.append(np.where(i >= 0, d, np.inf))
        dist, cand = np.concatenate(found_d, axis=1), np.concatenate(found_i, axis=1)
        if cand.shape[1] > wanted:
            # ties by row, so that the merge never depends on the shards' order of answers
            order = np.lexsort((cand, dist), axis=-1)[:, :wanted]
            cand = np.take_along_axis(cand, order, axis=1)
        return cand
