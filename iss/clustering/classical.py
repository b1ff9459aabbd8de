"""The original project's classical clustering: PCA, k-means with many centres, then
agglomerative (hierarchical) clustering of those centres into the final clusters, and
t-SNE for the plot.

Each picture takes the final cluster of its k-means centre, so prediction is inductive
(PCA, nearest centre, centre's cluster). t-SNE is not: a new picture is placed at the t-SNE
coordinates of its nearest fitted picture in the PCA space (training pictures get their own
coordinates back). ``plot="pca"`` plots the first two principal components instead (cheap,
and exact for new points).
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fcluster, leaves_list, linkage
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.neighbors import NearestNeighbors

from iss.clustering.base import (
    ClusteringBase,
    apply_map,
    check_choice,
    check_enough_samples,
    check_float,
    check_int,
    check_n_clusters,
    size_order_map,
)
from iss.clustering.metrics import choose_k

LINKAGES = ("ward", "average", "complete", "single", "centroid", "median", "weighted")


class PCAPlotMixin:
    """PCA reduction and the t-SNE / PCA plot shared by ``classical`` and ``advanced``."""

    def _check_pca_params(self, X):
        check_int("pca_components", self.pca_components, 1, X.shape[1])
        check_choice("plot", self.plot, ("tsne", "pca"))
        check_float("perplexity", self.perplexity, 1.0, low_open=False)
        check_int("random_state", self.random_state, 0)
        if self.plot == "tsne":
            check_enough_samples(f"perplexity={self.perplexity}", len(X), int(np.ceil(self.perplexity)) + 1,
                                 "t-SNE needs more samples than its perplexity")

    def _fit_pca(self, X):
        self.pca_ = PCA(n_components=self.pca_components, random_state=self.random_state).fit(X)
        self.reduced_ = self.pca_.transform(X).astype(np.float32)

    def _fit_plot(self):
        if self.plot == "tsne":
            tsne = TSNE(n_components=2, perplexity=self.perplexity, init="pca", random_state=self.random_state)
            self.embedding_ = tsne.fit_transform(self.reduced_.astype(np.float64)).astype(np.float32)
            self.neighbours_ = NearestNeighbors(n_neighbors=1).fit(self.reduced_)
        else:
            self.embedding_ = self._pca_2d(self.reduced_)
            self.neighbours_ = None

    @staticmethod
    def _pca_2d(reduced):
        out = np.zeros((len(reduced), 2), dtype=np.float32)
        out[:, :min(2, reduced.shape[1])] = reduced[:, :2]
        return out

    def _reduce(self, X):
        return self.pca_.transform(X).astype(np.float32)

    def _coords(self, X, reduced):
        reduced = self._reduce(X) if reduced is None else reduced
        if self.neighbours_ is None:
            return self._pca_2d(reduced)
        nearest = self.neighbours_.kneighbors(reduced, return_distance=False)[:, 0]
        return self.embedding_[nearest]


class ClassicalClustering(PCAPlotMixin, ClusteringBase):
    """PCA, k-means (many centres), agglomerative clustering of the centres; t-SNE plot.

    Parameters
    ----------
    pca_components : int, default=20
    kmeans_clusters : int, default=50
        Number of k-means centres (many small groups), at least ``n_clusters``.
    n_clusters : int or "auto", default=6
        Final clusters, cut from the centres' dendrogram; "auto" picks the cut of ``k_range``
        by ``k_criterion`` (curve in ``k_sweep_``). ``n_clusters == kmeans_clusters`` keeps every
        small group as a cluster, shown grouped by the merge tree (the dendrogram).
    k_range : (int, int), default=(2, 12)
    k_criterion : {"modularity", "silhouette"}, default="modularity"
        As for :class:`~iss.clustering.n2d.N2DClustering`.
    linkage : str, default="ward"
        scipy linkage method for the centres.
    plot : {"tsne", "pca"}, default="tsne"
    perplexity : float, default=30.0
        t-SNE perplexity.
    n_init : int, default=3
        k-means initialisations.
    random_state : int, default=0

    Attributes
    ----------
    labels_ : ndarray of int, shape (n_samples,)
        Final clusters numbered by decreasing size.
    n_clusters_ : int
    kmeans_ : KMeans
    centre_labels_ : ndarray of int, shape (kmeans_clusters,)
        Final cluster of each k-means centre.
    linkage_ : ndarray, shape (kmeans_clusters - 1, 4)
        scipy linkage matrix of the centres (for a dendrogram).
    merge_order_ : list of int
        The final clusters in the order of the merge tree's leaves: neighbours in it were merged
        early. With ``n_clusters == kmeans_clusters`` (the original project's way: 50 small
        clusters), it is the order to show them in, grouped as the dendrogram groups them.
    pca_ : PCA
    reduced_ : ndarray, shape (n_samples, pca_components)
    embedding_ : ndarray, shape (n_samples, 2)
        t-SNE (or PCA) plot coordinates of the training latents.
    k_sweep_ : dict or None
    """

    clustering_type = "classical"

    def __init__(self, pca_components=20, kmeans_clusters=50, n_clusters=6, k_range=(2, 12), k_criterion="modularity",
                 linkage="ward", plot="tsne", perplexity=30.0, n_init=3, random_state=0):
        self.pca_components = pca_components
        self.kmeans_clusters = kmeans_clusters
        self.n_clusters = n_clusters
        self.k_range = k_range
        self.k_criterion = k_criterion
        self.linkage = linkage
        self.plot = plot
        self.perplexity = perplexity
        self.n_init = n_init
        self.random_state = random_state

    def _check_params(self, X):
        n_clusters, (low, high) = check_n_clusters(self.n_clusters, self.k_range)
        k_max = high if n_clusters == "auto" else n_clusters
        check_int("kmeans_clusters", self.kmeans_clusters, max(2, k_max))
        check_enough_samples(f"kmeans_clusters={self.kmeans_clusters}", len(X), self.kmeans_clusters,
                             "one sample per k-means centre")
        check_choice("linkage", self.linkage, LINKAGES)
        check_choice("k_criterion", self.k_criterion, ("modularity", "silhouette"))
        check_int("n_init", self.n_init, 1)
        self._check_pca_params(X)

    def _fit(self, X):
        self._fit_pca(X)
        features = self.reduced_.astype(np.float64)
        self.kmeans_ = KMeans(n_clusters=self.kmeans_clusters, n_init=self.n_init,
                              random_state=self.random_state).fit(features)
        self.linkage_ = linkage(self.kmeans_.cluster_centers_, method=self.linkage)

        def cut(k):  # final label of every picture when the dendrogram is cut into k clusters
            return fcluster(self.linkage_, t=k, criterion="maxclust")[self.kmeans_.labels_]

        self.k_sweep_ = None
        k = self.n_clusters
        if k == "auto":
            k, self.k_sweep_ = choose_k(features, range(self.k_range[0], self.k_range[1] + 1), cut,
                                        self.k_criterion, graph_features=X, random_state=self.random_state)
        raw_centre_labels = fcluster(self.linkage_, t=k, criterion="maxclust")
        raw = raw_centre_labels[self.kmeans_.labels_]
        self.label_map_ = size_order_map(raw)
        # centres no picture ended at (possible after k-means convergence) still need a number
        n_used = len(self.label_map_) - 1  # without the -1 entry
        for extra, value in enumerate(sorted(set(raw_centre_labels.tolist()) - set(self.label_map_))):
            self.label_map_[value] = n_used + extra
        self.centre_labels_ = apply_map(raw_centre_labels, self.label_map_)
        self.labels_ = self.centre_labels_[self.kmeans_.labels_]
        self.n_clusters_ = int(len(np.unique(self.labels_)))
        order = self.centre_labels_[leaves_list(self.linkage_)]
        self.merge_order_ = [int(v) for v in dict.fromkeys(order.tolist())]  # first appearance, left to right
        self._fit_plot()

    def _predict_reduced(self, reduced):
        return self.centre_labels_[self.kmeans_.predict(np.asarray(reduced, dtype=np.float64))]
