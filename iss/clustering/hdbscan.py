"""UMAP then HDBSCAN (scikit-learn's ``sklearn.cluster.HDBSCAN``).

The number of clusters comes from the density; pictures in no dense region are noise,
label -1, shown and stored as their own label. scikit-learn's HDBSCAN has no out-of-sample
prediction, so a new picture takes the label of its nearest fitted picture in the UMAP
space (after ``UMAP.transform``) — which can be -1 when that neighbour is noise.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import HDBSCAN
from sklearn.neighbors import NearestNeighbors

from iss.clustering.base import (
    ClusteringBase,
    apply_map,
    check_choice,
    check_enough_samples,
    check_float,
    check_int,
    size_order_map,
)
from iss.clustering.n2d import UMAPClusteringMixin


class HDBSCANClustering(UMAPClusteringMixin, ClusteringBase):
    """UMAP then HDBSCAN; noise is label -1.

    Parameters
    ----------
    min_cluster_size : int, default=30
        Smallest group of pictures that counts as a cluster.
    min_samples : int or None, default=None
        Neighbourhood size for the core distance (None = ``min_cluster_size``).
    cluster_selection_epsilon : float, default=0.0
        Merge clusters closer than this (UMAP units).
    cluster_selection_method : {"eom", "leaf"}, default="eom"
    n_neighbors, min_dist, n_components, metric, n_epochs, knn, plot, random_state
        UMAP, as for :class:`~iss.clustering.n2d.N2DClustering`.

    Attributes
    ----------
    labels_ : ndarray of int, shape (n_samples,)
        -1 = noise, clusters numbered by decreasing size.
    n_clusters_ : int
        Clusters found, noise not counted.
    reduced_, embedding_, reducer_
        As for ``n2d``.
    clusterer_ : sklearn.cluster.HDBSCAN
    neighbours_ : NearestNeighbors
        On ``reduced_``, for ``predict``.
    """

    clustering_type = "hdbscan"

    def __init__(self, min_cluster_size=30, min_samples=None, cluster_selection_epsilon=0.0,
                 cluster_selection_method="eom", n_neighbors=20, min_dist=0.0, n_components=2,
                 metric="euclidean", n_epochs=None, knn="auto", plot="umap", random_state=0):
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.cluster_selection_epsilon = cluster_selection_epsilon
        self.cluster_selection_method = cluster_selection_method
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.n_components = n_components
        self.metric = metric
        self.n_epochs = n_epochs
        self.knn = knn
        self.plot = plot
        self.random_state = random_state

    def _check_params(self, X):
        check_int("min_cluster_size", self.min_cluster_size, 2)
        if self.min_samples is not None:
            check_int("min_samples", self.min_samples, 1)
        check_float("cluster_selection_epsilon", self.cluster_selection_epsilon, 0.0)
        check_choice("cluster_selection_method", self.cluster_selection_method, ("eom", "leaf"))
        self._check_umap_params(X)
        check_enough_samples(f"min_cluster_size={self.min_cluster_size}", len(X), self.min_cluster_size,
                             "one cluster's worth")

    def _fit(self, X):
        self._fit_reducer(X)
        features = self.reduced_.astype(np.float64)
        self.clusterer_ = HDBSCAN(min_cluster_size=self.min_cluster_size, min_samples=self.min_samples,
                                  cluster_selection_epsilon=self.cluster_selection_epsilon,
                                  cluster_selection_method=self.cluster_selection_method,
                                  copy=False).fit(features)  # features is already our own copy
        raw = self.clusterer_.labels_
        self.label_map_ = size_order_map(raw)
        self.labels_ = apply_map(raw, self.label_map_)
        self.n_clusters_ = int((np.unique(self.labels_) >= 0).sum())
        self.neighbours_ = NearestNeighbors(n_neighbors=1).fit(features)
        self.k_sweep_ = None
        if self.n_clusters_ == 0:
            self._warn(f"HDBSCAN found no cluster: all {len(X)} distinct pictures are noise (label -1); lower "
                       f"min_cluster_size (now {self.min_cluster_size})"
                       + (f" or min_samples (now {self.min_samples})" if self.min_samples is not None else "")
                       + ", or use n2d, which always forms n_clusters clusters")

    def _predict_reduced(self, reduced):
        nearest = self.neighbours_.kneighbors(np.asarray(reduced, dtype=np.float64), return_distance=False)[:, 0]
        return self.labels_[nearest]
