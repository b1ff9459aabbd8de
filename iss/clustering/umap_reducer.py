"""UMAP without the cold start: cached numba code, no TensorFlow, exact neighbours.

Why this module exists. In a fresh process, plain ``import umap`` followed by a fit on
14,000 latents spent 40-55 s here compiling numba code before doing any work, and imported
TensorFlow. Three things fix that:

1. umap is imported without TensorFlow (``umap.parametric_umap`` blocked).
2. While umap and pynndescent are imported, ``numba.njit``/``numba.jit`` default to
   ``cache=True``, so the compiled code is written once to a versioned cache folder and every
   later process loads it. The first process ever pays the compilation once.
3. pynndescent's NN-descent cannot be cached (it receives the distance function as an
   argument, which numba refuses to cache), so up to ``exact_knn_max`` samples the k nearest
   neighbours are computed exactly (:class:`iss.neighbours.ExactNeighbours`: scikit-learn's
   brute force, a few seconds for 14,000 x 288) and handed to UMAP as ``precomputed_knn``,
   together with that index, so that ``UMAP.transform`` works on new points. Larger inputs
   use NN-descent.

1 and 2 (:func:`iss.clustering.umap_compat.import_umap`) and the index's shape in 3 rely on
umap-learn's internals; they all live in :mod:`iss.clustering.umap_compat`, which a test checks
against the installed umap-learn.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.sparse.csgraph import connected_components
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from iss.clustering.umap_compat import (
    expected_warnings,
    fuzzy_graph,
    import_umap,
    nndescent_neighbours,
    precomputed_knn,
    spectral_layout,
)
from iss.neighbours import ExactNeighbours

log = logging.getLogger(__name__)

# metrics scikit-learn's brute-force neighbours computes like umap does
EXACT_KNN_METRICS = ("euclidean", "cosine", "manhattan", "chebyshev", "minkowski", "correlation",
                     "l1", "l2", "cityblock", "braycurtis", "canberra", "sqeuclidean")


# the package's one exact k-NN (the name clustering has always used; saved clusterings refer to it)
ExactKNNIndex = ExactNeighbours


def pca_layout(X: np.ndarray, dim: int, random_state: int) -> np.ndarray:
    """The first ``dim`` principal components of ``X`` (n, dim), scaled to [-1, 1]: the
    initialisation that keeps global structure when the spectral one fails (Kobak & Linderman,
    Nature Biotechnology 39, 2021)."""
    from sklearn.decomposition import PCA

    coords = np.zeros((len(X), dim), dtype=np.float64)
    k = min(dim, *X.shape)
    coords[:, :k] = PCA(n_components=k, random_state=random_state).fit_transform(np.asarray(X, dtype=np.float64))
    return coords / (np.abs(coords).max() or 1.0)


def reproducible_init(X: np.ndarray, graph, dim: int, random_state: int) -> np.ndarray | str:
    """UMAP's spectral initialisation, made reproducible when the neighbour graph is disconnected.

    For a connected graph umap's own "spectral" init is deterministic and is used as is. For
    a disconnected one (well separated groups, e.g. identical "live is off" frames) umap lays
    out the components with a spectral embedding of their centroids' affinities, which come
    out as exp(-d^2) = 0 for far apart groups; the solver then returns different layouts from
    the same seed (seen here: the same data gave different embeddings and swapped labels).
    This does what umap's ``multi_component_layout`` does, with the components' positions
    taken from a PCA of their centroids instead (deterministic), each component laid out by
    umap's spectral layout of its own (connected) graph.

    Returns
    -------
    "spectral" or ndarray of shape (n, dim)
    """
    from sklearn.decomposition import PCA
    from sklearn.metrics import pairwise_distances

    n_parts, part_of = connected_components(graph, directed=False)
    if n_parts == 1:
        # umap's own spectral init has no bound on its solver: check it converges first (cheap
        # when it does, see SPECTRAL_MAXITER), else start from the principal components
        if spectral_layout(graph, dim, np.random.RandomState(random_state)) is not None:
            return "spectral"
        log.warning("the spectral initialisation of UMAP did not converge (a neighbour graph of many "
                    "near-copies?): UMAP starts from the principal components instead")
        return pca_layout(X, dim, random_state) * 10.0  # umap scales its spectral init to [-10, 10]
    rng = np.random.RandomState(random_state)
    if n_parts > 2 * dim:
        centroids = np.stack([X[part_of == p].mean(axis=0) for p in range(n_parts)]).astype(np.float64)
        meta = PCA(n_components=min(dim, n_parts, X.shape[1]), random_state=random_state).fit_transform(centroids)
        meta = np.hstack([meta, np.zeros((n_parts, dim - meta.shape[1]))])
        meta /= np.abs(meta).max() or 1.0
    else:  # as umap: the corners of a cross
        k = int(np.ceil(n_parts / 2.0))
        base = np.hstack([np.eye(k), np.zeros((k, dim - k))])
        meta = np.vstack([base, -base])[:n_parts]
    graph = graph.tocsr()
    init = np.empty((graph.shape[0], dim), dtype=np.float64)
    for p in range(n_parts):
        members = part_of == p
        distances = pairwise_distances(meta[p:p + 1], meta)
        half_gap = distances[distances > 0.0].min() / 2.0 if (distances > 0.0).any() else 1.0
        size = int(members.sum())
        if size < 2 * dim or size <= dim + 1:
            init[members] = rng.uniform(-half_gap, half_gap, size=(size, dim)) + meta[p]
        else:
            layout = spectral_layout(graph[members][:, members], dim, rng)
            if layout is None:  # the solver did not converge (see SPECTRAL_MAXITER)
                layout = pca_layout(X[members], dim, random_state)
            init[members] = layout * (half_gap / (np.abs(layout).max() or 1.0)) + meta[p]
    return init.astype(np.float32)


class UMAPReducer(TransformerMixin, BaseEstimator):
    """UMAP to ``n_components`` dimensions, plus 2-D plot coordinates.

    Parameters
    ----------
    n_neighbors : int, default=20
    min_dist : float, default=0.0
    n_components : int, default=2
    metric : str, default="euclidean"
    n_epochs : int or None, default=None
        None = umap's default (200 above 10,000 samples, else 500).
    knn : {"auto", "exact", "nndescent"}, default="auto"
        Neighbour search: "auto" is exact up to ``exact_knn_max`` samples (no compilation
        cost, see the module docstring), NN-descent above.
    exact_knn_max : int, default=50000
    plot : {"umap", "first"}, default="umap"
        When ``n_components > 2``: "umap" fits a second, 2-D UMAP on the same neighbour
        graph for the plots (a faithful picture, costs one more layout); "first" plots the
        first two of the ``n_components`` coordinates (free, but a projection).
    random_state : int, default=0
        Makes umap single-threaded and reproducible.
    """

    def __init__(self, n_neighbors=20, min_dist=0.0, n_components=2, metric="euclidean", n_epochs=None,
                 knn="auto", exact_knn_max=50000, plot="umap", random_state=0):
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.n_components = n_components
        self.metric = metric
        self.n_epochs = n_epochs
        self.knn = knn
        self.exact_knn_max = exact_knn_max
        self.plot = plot
        self.random_state = random_state

    def _umap(self, n_components: int, precomputed_knn, init):
        umap = import_umap()
        return umap.UMAP(n_neighbors=self.n_neighbors, min_dist=self.min_dist, n_components=n_components,
                         metric=self.metric, n_epochs=self.n_epochs, random_state=self.random_state, n_jobs=1,
                         precomputed_knn=precomputed_knn, init=init, tqdm_kwds={"disable": True})

    def _neighbours(self, X: np.ndarray, exact: bool):
        """``(indices, distances, index)`` of every point's ``n_neighbors`` nearest (itself first)."""
        if exact:
            return precomputed_knn(*ExactNeighbours(X, self.metric).neighbour_graph(self.n_neighbors))
        return nndescent_neighbours(X, self.n_neighbors, self.metric, self.random_state)

    def fit(self, X, y=None):
        """Fit on ``X`` (n, d) float32; sets ``embedding_`` (n, n_components) and ``embedding_2d_`` (n, 2)."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        exact = self.knn == "exact" or (self.knn == "auto" and len(X) <= self.exact_knn_max
                                        and self.metric in EXACT_KNN_METRICS)
        if self.knn == "exact" and self.metric not in EXACT_KNN_METRICS:
            raise ValueError(f"knn='exact' with metric={self.metric!r}: exact neighbours support "
                             f"{', '.join(EXACT_KNN_METRICS)}; use knn='nndescent'")
        with expected_warnings():
            knn = self._neighbours(X, exact)
            # the fuzzy graph once more (umap builds it again inside fit, ~0.1 s) to choose the init
            graph = fuzzy_graph(X, self.n_neighbors, self.metric, knn, self.random_state)
            init = reproducible_init(X, graph, self.n_components, self.random_state)
            self.umap_ = self._umap(self.n_components, knn, init).fit(X)
            self.embedding_ = np.asarray(self.umap_.embedding_, dtype=np.float32)
            if self.n_components == 2:
                self.plot_umap_ = None
                self.embedding_2d_ = self.embedding_
            elif self.plot == "umap":  # same neighbours, 2-D layout
                init_2d = reproducible_init(X, graph, 2, self.random_state)
                self.plot_umap_ = self._umap(2, knn, init_2d).fit(X)
                self.embedding_2d_ = np.asarray(self.plot_umap_.embedding_, dtype=np.float32)
            else:
                self.plot_umap_ = None
                self.embedding_2d_ = self.embedding_[:, :2].copy()
        self.exact_knn_ = exact
        self.n_graph_components_ = int(connected_components(graph, directed=False)[0])
        return self

    def transform(self, X) -> np.ndarray:
        """New points into the fitted ``n_components``-D embedding: (n, n_components)."""
        check_is_fitted(self, "umap_")
        with expected_warnings():
            return np.asarray(self.umap_.transform(np.asarray(X, dtype=np.float32)), dtype=np.float32)

    def transform_2d(self, X, reduced: np.ndarray | None = None) -> np.ndarray:
        """Plot coordinates (n, 2) of new points (``reduced`` = their ``transform`` if already known)."""
        check_is_fitted(self, "umap_")
        if self.plot_umap_ is None:
            reduced = self.transform(X) if reduced is None else reduced
            return np.ascontiguousarray(reduced[:, :2])
        return np.asarray(self.plot_umap_.transform(np.asarray(X, dtype=np.float32)), dtype=np.float32)
