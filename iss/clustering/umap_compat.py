"""Everything we rely on in umap-learn (and pynndescent, numba) beyond the public ``umap.UMAP``.

umap-learn offers no public way to cache its compiled code, to hand ``UMAP.transform`` an exact
neighbour index, or to reuse its neighbour graph and spectral layout. Each way in goes through one
function or class here, and ``tests/clustering/test_umap_compat.py`` checks every one of them
against the installed versions, so an upgrade that changes one fails there, loudly, by name.

- :func:`import_umap`: ``import umap`` with ``numba.njit`` / ``numba.jit`` patched to default to
  ``cache=True`` (umap declares almost none of its ~130 compiled functions cacheable, so every
  process recompiled them: 40-55 s) and with ``umap.parametric_umap`` blocked (no TensorFlow).
- :func:`precomputed_knn`: a neighbour graph and an index for ``UMAP(precomputed_knn=...)``; the
  index is wrapped in :class:`TransformIndex`, shaped as ``UMAP.transform`` uses pynndescent's
  ``NNDescent`` (``query`` and the private ``_angular_trees``).
- :func:`nndescent_neighbours`, :func:`fuzzy_graph`, :func:`spectral_layout`: umap's own
  ``umap.umap_.nearest_neighbors``, ``umap.umap_.fuzzy_simplicial_set`` and
  ``umap.spectral.spectral_layout``, called with the arguments they take today.
- :func:`expected_warnings`: the warnings those uses make umap and numba print on every run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from iss.config import PROJ_ROOT

# the warnings expected with our uses: {message (a regex), the module that words it}
EXPECTED_WARNINGS = {
    # precomputed_knn[2] is a TransformIndex, not pynndescent's index
    ".*NNDescent object.*": "umap.umap_",
    # spectral init of a disconnected graph (reproducible_init lays it out)
    ".*not fully connected.*": "sklearn.manifold._spectral_embedding",
    # n_jobs=1 with a random_state: umap says it is overridden
    ".*n_jobs value.*": "umap.umap_",
    # NN-descent (large inputs) takes its distance as an argument, which numba cannot cache
    "Cannot cache compiled function": "numba.core.caching",
}


def numba_cache_dir() -> Path:
    """Folder for numba's on-disk cache of umap/pynndescent code (created on use).

    ``$NUMBA_CACHE_DIR``, else ``$ISS_NUMBA_CACHE_DIR``, else ``<project>/.cache/numba/<key>``
    where the key names the python/numba/umap/pynndescent versions, so an upgrade never reuses
    stale machine code.
    """
    from importlib.metadata import version

    base = os.environ.get("NUMBA_CACHE_DIR") or os.environ.get("ISS_NUMBA_CACHE_DIR")
    if base:
        return Path(base)
    key = "-".join([platform.python_version(), version("numba"), version("umap-learn"), version("pynndescent")])
    return PROJ_ROOT / ".cache" / "numba" / hashlib.sha1(key.encode()).hexdigest()[:12]


@contextlib.contextmanager
def _numba_cache_on() -> Iterator[None]:
    """Make ``numba.njit``/``numba.jit`` default to ``cache=True`` inside the block."""
    import numba

    njit, jit = numba.njit, numba.jit

    def cached_njit(*args, **kwargs):
        kwargs.setdefault("cache", True)
        return njit(*args, **kwargs)

    def cached_jit(*args, **kwargs):
        kwargs.setdefault("cache", True)
        return jit(*args, **kwargs)

    numba.njit, numba.jit = cached_njit, cached_jit
    try:
        yield
    finally:
        numba.njit, numba.jit = njit, jit


def import_umap():
    """The ``umap`` module, imported with numba caching on and without TensorFlow.

    Idempotent; if umap was already imported elsewhere it is returned as is.

    ``umap.parametric_umap`` is blocked while umap is imported (a ``None`` entry in ``sys.modules``
    makes that import raise ``ImportError``, which umap's ``__init__`` catches), unless TensorFlow
    is already loaded, in which case it costs nothing.
    """
    if "umap.umap_" in sys.modules:
        return sys.modules["umap"]
    import numba

    cache_dir = numba_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    if not os.environ.get("NUMBA_CACHE_DIR"):
        numba.config.CACHE_DIR = str(cache_dir)  # read when each function's cache is set up
    block_tf = "tensorflow" not in sys.modules and "umap.parametric_umap" not in sys.modules
    if block_tf:
        sys.modules["umap.parametric_umap"] = None  # -> ImportError inside umap/__init__, caught there
    try:
        with _numba_cache_on(), warnings.catch_warnings():
            warnings.simplefilter("ignore", ImportWarning)
            import umap  # noqa: PLC0415 - the point of this function
    finally:
        if block_tf and sys.modules.get("umap.parametric_umap", 0) is None:
            del sys.modules["umap.parametric_umap"]  # a later explicit import still works
    return umap


@contextlib.contextmanager
def expected_warnings() -> Iterator[None]:
    """Silence :data:`EXPECTED_WARNINGS` (and only them) inside the block."""
    with warnings.catch_warnings():
        for message in EXPECTED_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        yield


class TransformIndex:
    """What ``UMAP.transform`` uses of ``precomputed_knn[2]``, where umap expects pynndescent's
    ``NNDescent``: ``query(X, k, epsilon)`` and the private flag ``_angular_trees`` (it only picks
    ``epsilon``, which an exact search ignores).

    Parameters
    ----------
    index : object
        Has ``query(X, k)`` returning ``(indices int32 (n, k), distances float32 (n, k))`` of the
        k nearest fitted points, e.g. :class:`iss.clustering.umap_reducer.ExactKNNIndex`.
    """

    _angular_trees = False

    def __init__(self, index):
        self.index = index

    def query(self, X: np.ndarray, k: int, epsilon: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, distances)`` of the k nearest fitted points of each row of ``X``."""
        return self.index.query(X, k)


def precomputed_knn(indices: np.ndarray, distances: np.ndarray, index) -> tuple:
    """``UMAP(precomputed_knn=...)``'s value: each fitted point's neighbours (itself first) and
    ``index`` wrapped in a :class:`TransformIndex`, so ``UMAP.transform`` works on new points."""
    return indices, distances, TransformIndex(index)


def nndescent_neighbours(X: np.ndarray, n_neighbors: int, metric: str, random_state: int) -> tuple:
    """``(indices, distances, index)`` by umap's own NN-descent (``umap.umap_.nearest_neighbors``),
    one thread, low memory."""
    import_umap()
    from umap.umap_ import nearest_neighbors

    return nearest_neighbors(X, n_neighbors, metric, {}, False, np.random.RandomState(random_state),
                             low_memory=True, n_jobs=1)


def fuzzy_graph(X: np.ndarray, n_neighbors: int, metric: str, knn: tuple, random_state: int):
    """umap's fuzzy neighbour graph (sparse, n x n) of ``X`` from ``knn`` = ``(indices, distances, ...)``
    (``umap.umap_.fuzzy_simplicial_set``), the one ``UMAP.fit`` builds."""
    import_umap()
    from umap.umap_ import fuzzy_simplicial_set

    return fuzzy_simplicial_set(X, n_neighbors, np.random.RandomState(random_state), metric,
                                knn_indices=knn[0], knn_dists=knn[1])[0]


# Restarts of the eigensolver allowed for the spectral layout. On healthy neighbour graphs it
# converges within 30 (the demo, MNIST-10k: under 0.1 s); umap's own bound is 5 x the number of
# points, and on a graph of many near-copies (a webcam archive; 20,000 frames drawn from 2,000
# scenes, benchmarks/scale.py) the smallest eigenvalues crowd together and ARPACK ran for over
# 25 minutes there without converging (500 restarts: 21 s, still not converged).
SPECTRAL_MAXITER = 100


def spectral_layout(graph, dim: int, random_state: np.random.RandomState) -> np.ndarray | None:
    """umap's spectral layout (``umap.spectral.spectral_layout``) of a connected ``graph`` in ``dim``
    dimensions: (n, dim), or None when the eigensolver does not converge within
    ``SPECTRAL_MAXITER`` restarts (umap would then fall back to a random layout; the caller
    chooses its own)."""
    import_umap()
    from umap.spectral import spectral_layout as layout

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        coords = layout(None, graph, dim, random_state, maxiter=SPECTRAL_MAXITER)
    if any("Spectral initialisation failed" in str(w.message) for w in caught):
        return None
    return coords
