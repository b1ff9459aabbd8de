"""Prediction of the whole collection by a clustering fitted on a sample, in partitions, here or on Dask.

A clustering fitted on ``clustering.fit_sample`` pictures assigns the others (labels, reduced
features, plot coordinates) with :meth:`ClusteringBase.assign`. That is done on partitions of the
distinct rows to assign, of ``compute.partition_size`` rows (default :data:`PARTITION_ROWS`):

- ``compute.scheduler: auto`` assigns the partitions one after the other in this process;
- ``local``, ``synchronous`` or a scheduler address assign them as Dask tasks
  (:func:`assign_partition`): the fitted clustering is pickled once and sent to each worker,
  the rows go through a Zarr store chunked by partition (``compute.store``), each task returns
  its partition's assignment.

Why partitions also in process, and why their size does not follow the workers: UMAP's
``transform`` of a point depends on the points transformed with it (its epochs and edge weights
are set per call), so the same partitions give the same labels wherever they run; and a
partition bounds the memory of one ``transform`` (a million points at once would not).
Why distinct rows: a copy of a picture must share its original's cluster even when the two
would fall in different partitions.
"""

from __future__ import annotations

import logging
import pickle
import time

import numpy as np

from iss.clustering.base import Assignment, ClusteringBase, distinct_rows, row_keys
from iss.compute import ComputeSettings, open_compute, process_cached, step_store_url

log = logging.getLogger(__name__)

PARTITION_ROWS = 4096  # ~4.7 MB of 288-d latents a task; UMAP transforms it in about a second


def assign_collection(cfg, estimator: ClusteringBase, X: np.ndarray) -> Assignment:
    """Labels, reduced features and plot coordinates of every row of ``X`` (see the module docstring).

    Parameters
    ----------
    cfg : Config
        Its ``compute`` section says where the partitions run and their size.
    estimator : ClusteringBase
        A fitted clustering (as loaded from its saved folder).
    X : ndarray of float32, shape (n, d)

    Returns
    -------
    Assignment
        One row per row of ``X``; identical rows get identical values.

    Raises
    ------
    ComputeError
        On Dask: the scheduler does not answer, or the workers cannot import iss or reach
        ``compute.store``.
    """
    first, inverse, _ = distinct_rows(row_keys(X))
    distinct = np.ascontiguousarray(X[first], dtype=np.float32)
    compute = ComputeSettings.from_config(cfg)
    size = compute.partition_size or PARTITION_ROWS
    bounds = [(start, min(start + size, len(distinct))) for start in range(0, len(distinct), size)]
    scheduler = compute.resolve(len(distinct))  # auto: here, on a local collection
    tick = time.perf_counter()
    if scheduler == "inprocess":
        parts = [estimator.assign(distinct[start:stop]) for start, stop in bounds]
    else:
        parts = _assign_on_dask(cfg, compute, scheduler, estimator, distinct, bounds, size)
    log.info("predicted %d pictures (%d distinct) in %d partitions of up to %d in %.1f s (%s)", len(X),
             len(distinct), len(bounds), size, time.perf_counter() - tick,
             "in process" if scheduler == "inprocess" else f"Dask {scheduler}")
    labels = np.concatenate([part.labels for part in parts])
    reduced = np.concatenate([part.reduced for part in parts])
    coords = np.concatenate([part.coords for part in parts])
    return Assignment(labels=labels[inverse], reduced=reduced[inverse], coords=coords[inverse])


def shared_clustering(blob: bytes, clustering_type: str) -> ClusteringBase:
    """The clustering pickled in ``blob``, unpickled once per process (per Dask worker) and kept."""
    def load() -> ClusteringBase:
        from iss.clustering import clustering_class

        clustering_class(clustering_type)._before_load()  # e.g. umap with numba's cache, without TensorFlow
        return pickle.loads(blob)  # noqa: S301 - pickled by this step, a moment ago

    return process_cached("clustering", hash(blob), load)


def assign_partition(blob: bytes, clustering_type: str, store_url: str, partition: int, partition_size: int,
                     n: int) -> Assignment:
    """A Dask task: the assignment of the ``n`` rows of chunk ``partition`` of the store's ``features``.

    Idempotent: it only reads; the caller keeps the first result of each partition.
    """
    from iss.data.partition_store import PartitionStore

    (features,) = PartitionStore(store_url, partition_size).read(partition, n, "features")
    return shared_clustering(blob, clustering_type).assign(features)


def _assign_on_dask(cfg, compute: ComputeSettings, scheduler: str, estimator: ClusteringBase, distinct: np.ndarray,
                    bounds: list[tuple[int, int]], size: int) -> list[Assignment]:
    """The assignments of the partitions ``bounds`` of ``distinct``, in partition order, as Dask tasks."""
    from iss.data.partition_store import PartitionStore

    store_url = step_store_url(cfg, compute.store, "predict")
    store = PartitionStore.create(store_url, len(bounds), size, {"features": ((distinct.shape[1],), "float32")})
    for p, (start, stop) in enumerate(bounds):
        store.write(p, features=distinct[start:stop])
    parts: list[Assignment | None] = [None] * len(bounds)
    with open_compute(compute, scheduler) as session:
        log.info("predict: %d pictures in %d partitions of %d on %s (workers: %d), rows through %s",
                 len(distinct), len(bounds), size, session.kind, session.workers, store_url)
        blob = session.share(pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL))
        tasks = [(blob, estimator.clustering_type, store_url, p, size, stop - start)
                 for p, (start, stop) in enumerate(bounds)]
        for p, assignment in session.map_unordered(assign_partition, tasks, key="predict"):
            parts[p] = assignment
    store.remove()
    return parts
