"""Task functions for the Dask tests, importable by name on a worker. This module imports TensorFlow, as
``iss.models.encode`` does, so a task of it runs with TensorFlow loaded and not yet run."""

from __future__ import annotations

import tensorflow as tf


def thread_pools() -> dict:
    """The thread pools a task sees: TensorFlow's intra-op setting, numba's, and every BLAS/OpenMP pool's."""
    import numba
    from threadpoolctl import threadpool_info

    return {"tensorflow": tf.config.threading.get_intra_op_parallelism_threads(), "numba": numba.get_num_threads(),
            "blas_openmp": sorted({pool["num_threads"] for pool in threadpool_info()})}
