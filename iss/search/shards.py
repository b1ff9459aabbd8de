"""The sharded approximate index built as Dask tasks, one task per shard of the collection.

Above ``search.approximate_above`` pictures the search index asks HNSW graphs for candidates
(:mod:`iss.search.approximate`). Where ``compute.scheduler`` resolves to Dask (``local``,
``synchronous`` or a scheduler address; ``auto`` keeps one graph built in this process, as a
LocalCluster never paid back its start-up on one machine, README "Compute"), the graph is built
as shards of ``search.shard_size`` consecutive rows:

1. this process writes the centred latents to a Zarr store chunked by shard
   (:class:`~iss.data.partition_store.PartitionStore`, ``index_partitions.zarr`` beside
   ``compute.store``), which every worker can reach;
2. each task (:func:`build_shard_task`) reads its shard's rows, builds their HNSW graph on one
   thread (:func:`~iss.search.approximate.build_shard`: the same bytes wherever it runs) and writes
   it, serialized, as one whole file ``shards/<shard>.faiss`` of the store: a task retried after its
   worker was lost rewrites the same file, so a retry is harmless;
3. this process reads the files back in shard order into a
   :class:`~iss.search.approximate.ShardedNeighbours`, and removes the store.

The shards depend on ``search.shard_size`` only, never on the number of workers, so an index built
on a LocalCluster, a cluster or ``synchronous`` is the same index.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from iss.compute import ComputeSettings, import_optional, open_compute, step_store_url

log = logging.getLogger(__name__)


def shard_file(store_url: str, shard: int) -> str:
    """Where the task of ``shard`` writes its serialized graph, inside the run's store."""
    return f"{store_url.rstrip('/')}/shards/{shard:05d}.faiss"


def build_shard_task(store_url: str, shard: int, shard_size: int, n: int, m: int, ef_construction: int) -> int:
    """A Dask task: the HNSW graph of the ``n`` rows of chunk ``shard`` of the store's ``vectors``.

    Writes the serialized graph as one whole file (:func:`shard_file`); returns its size in bytes.
    Idempotent: a retry builds the same graph and writes the same bytes to the same file.
    """
    from iss.data.partition_store import PartitionStore
    from iss.search.approximate import build_shard

    fsspec = import_optional("fsspec", "the sharded search index build")
    (vectors,) = PartitionStore(store_url, shard_size).read(shard, n, "vectors")
    blob = build_shard(vectors, m, ef_construction)
    fs, path = fsspec.core.url_to_fs(shard_file(store_url, shard))
    fs.makedirs(path.rpartition("/")[0], exist_ok=True)
    fs.pipe_file(path, blob)
    return len(blob)


@dataclass(frozen=True)
class ShardedBuild:
    """Builds the shards of the approximate index where ``compute.scheduler`` says.

    Handed to :class:`~iss.search.index.SimilarityIndex` (``shard_build``): when the scheduler
    resolves to Dask for the index's size, its graph is a
    :class:`~iss.search.approximate.ShardedNeighbours` whose shards this object builds.

    Attributes
    ----------
    settings : ComputeSettings
    store_url : str
        The run's chunked store (:func:`iss.compute.step_store_url` of step ``index``).
    shard_size : int
        ``search.shard_size``.
    """

    settings: ComputeSettings
    store_url: str
    shard_size: int

    @classmethod
    def from_config(cls, cfg) -> "ShardedBuild":
        """The ``compute`` section and ``search.shard_size`` of ``cfg``."""
        settings = ComputeSettings.from_config(cfg)
        return cls(settings, step_store_url(cfg, settings.store, "index"), int(cfg.get("search.shard_size")))

    def scheduler_for(self, n: int) -> str:
        """The scheduler an index of ``n`` pictures is built on (``inprocess``: one graph, here)."""
        return self.settings.resolve(n)

    def __call__(self, vectors: np.ndarray, bounds: list[tuple[int, int]], m: int, ef_construction: int,
                 ) -> list[bytes]:
        """The serialized graph of each shard ``bounds`` of ``vectors``, in order, built as Dask tasks.

        Raises
        ------
        ComputeError
            The scheduler does not answer, or the workers cannot import iss or reach the store.
        """
        from iss.data.partition_store import PartitionStore

        fsspec = import_optional("fsspec", "the sharded search index build")
        scheduler = self.scheduler_for(len(vectors))
        size = max(stop - start for start, stop in bounds)
        began = time.perf_counter()
        store = PartitionStore.create(self.store_url, len(bounds), size, {"vectors": ((vectors.shape[1],), "float32")})
        for shard, (start, stop) in enumerate(bounds):
            store.write(shard, vectors=vectors[start:stop])
        blobs: list[bytes | None] = [None] * len(bounds)
        try:
            with open_compute(self.settings, scheduler) as session:
                log.info("search index: %d pictures in %d shards of %d on %s (workers: %d), through %s",
                         len(vectors), len(bounds), size, session.kind, session.workers, self.store_url)
                tasks = [(self.store_url, shard, size, stop - start, m, ef_construction)
                         for shard, (start, stop) in enumerate(bounds)]
                for shard, _ in session.map_unordered(build_shard_task, tasks, key="index-shard"):
                    fs, path = fsspec.core.url_to_fs(shard_file(self.store_url, shard))
                    blobs[shard] = fs.cat_file(path)
        finally:
            store.remove()
        log.info("search index: %d shards built in %.1f s (%s)", len(bounds), time.perf_counter() - began, scheduler)
        return blobs
