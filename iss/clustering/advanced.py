"""The original project's "advanced" clustering: consensus k-means, then DBSCAN on the
centres of the consensus groups.

1. PCA of the latents.
2. ``n_runs`` k-means runs, each with a random k in ``[k_low, k_high]``.
3. Pictures that every run put together (same label in all runs) form a consensus group;
   groups with at least ``threshold`` members are kept, their mean is a centre.
4. DBSCAN (``eps``, ``min_samples``) on the kept centres merges nearby groups into the final
   clusters; a centre DBSCAN calls noise stays a cluster of its own (it passed the
   threshold, so it is a real group, just an isolated one).
5. Members of kept groups take their group's cluster; every other picture, and any new
   picture (``predict``), takes the cluster of its nearest kept centre.

Plot: first two principal components (``plot="pca"``, default) or t-SNE (``plot="tsne"``,
new points at their nearest fitted neighbour's coordinates, as in ``classical``).
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import DBSCAN, KMeans
from sklearn.neighbors import NearestNeighbors
from sklearn.utils import check_random_state

from iss.clustering.base import (
    ClusteringBase,
    apply_map,
    check_enough_samples,
    check_float,
    check_int,
    size_order_map,
)
from iss.clustering.classical import PCAPlotMixin


class AdvancedClustering(PCAPlotMixin, ClusteringBase):
    """Consensus k-means over random k, then DBSCAN on the consensus centres.

    Parameters
    ----------
    pca_components : int, default=20
    k_low, k_high : int, default=20, 60
        Range of the random k of each k-means run.
    n_runs : int, default=10
    threshold : int, default=10
        Smallest consensus group kept.
    eps : float, default=1.0
        DBSCAN radius between centres, in PCA units.
    min_samples : int, default=2
        DBSCAN: centres within ``eps`` needed to form a dense core.
    plot : {"pca", "tsne"}, default="pca"
    perplexity : float, default=30.0
    random_state : int, default=0

    Attributes
    ----------
    labels_ : ndarray of int, shape (n_samples,)
        Final clusters numbered by decreasing size.
    n_clusters_ : int
    ks_ : ndarray of int, shape (n_runs,)
        The k of each run.
    centres_ : ndarray, shape (n_kept, pca_components)
        Means of the kept consensus groups.
    centre_labels_ : ndarray of int, shape (n_kept,)
        Final cluster of each centre.
    group_sizes_ : ndarray of int, shape (n_kept,)
    n_groups_ : int
        Consensus groups before the threshold.
    pca_, reduced_, embedding_
        As for ``classical``.
    """

    clustering_type = "advanced"

    def __init__(self, pca_components=20, k_low=20, k_high=60, n_runs=10, threshold=10, eps=1.0, min_samples=2,
                 plot="pca", perplexity=30.0, random_state=0):
        self.pca_components = pca_components
        self.k_low = k_low
        self.k_high = k_high
        self.n_runs = n_runs
        self.threshold = threshold
        self.eps = eps
        self.min_samples = min_samples
        self.plot = plot
        self.perplexity = perplexity
        self.random_state = random_state

    def _check_params(self, X):
        low = check_int("k_low", self.k_low, 2)
        check_int("k_high", self.k_high, low)
        check_int("n_runs", self.n_runs, 1)
        check_int("threshold", self.threshold, 1)
        check_float("eps", self.eps, 0.0, low_open=True)
        check_int("min_samples", self.min_samples, 1)
        check_enough_samples(f"k_high={self.k_high}", len(X), self.k_high, "one sample per k-means centre")
        self._check_pca_params(X)

    def _fit(self, X):
        self._fit_pca(X)
        features = self.reduced_.astype(np.float64)
        rng = check_random_state(self.random_state)
        self.ks_ = rng.randint(self.k_low, self.k_high + 1, size=self.n_runs)
        seeds = rng.randint(0, 2**31 - 1, size=self.n_runs)
        runs = np.stack([KMeans(n_clusters=int(k), n_init=1, random_state=int(seed)).fit_predict(features)
                         for k, seed in zip(self.ks_, seeds)], axis=1)  # (n, n_runs)
        # one consensus group per distinct row of run labels
        _, group_of, sizes = np.unique(runs, axis=0, return_inverse=True, return_counts=True)
        group_of = group_of.ravel()
        self.n_groups_ = int(len(sizes))
        kept = np.flatnonzero(sizes >= self.threshold)
        if len(kept) == 0:
            raise ValueError(f"threshold={self.threshold}: no consensus group has that many members (the largest "
                             f"has {int(sizes.max())}); lower threshold, n_runs or k_high")
        self.group_sizes_ = sizes[kept]
        one_hot = (group_of[:, None] == kept[None, :])  # (n, n_kept) membership of kept groups
        self.centres_ = ((one_hot.T @ features) / self.group_sizes_[:, None]).astype(np.float32)

        raw_centre_labels = DBSCAN(eps=self.eps, min_samples=self.min_samples).fit(self.centres_).labels_
        noise = raw_centre_labels < 0  # isolated groups stay clusters of their own
        raw_centre_labels = raw_centre_labels.copy()
        raw_centre_labels[noise] = raw_centre_labels.max() + 1 + np.arange(noise.sum())

        self.nearest_centre_ = NearestNeighbors(n_neighbors=1).fit(self.centres_)
        in_kept = one_hot.any(axis=1)
        centre_of = np.where(in_kept, one_hot.argmax(axis=1), self._nearest_centre(self.reduced_))
        raw = raw_centre_labels[centre_of]
        self.label_map_ = size_order_map(raw)
        n_used = len(self.label_map_) - 1
        for extra, value in enumerate(sorted(set(raw_centre_labels.tolist()) - set(self.label_map_))):
            self.label_map_[value] = n_used + extra
        self.centre_labels_ = apply_map(raw_centre_labels, self.label_map_)
        self.labels_ = self.centre_labels_[centre_of]
        self.n_clusters_ = int(len(np.unique(self.labels_)))
        self.k_sweep_ = None
        self._fit_plot()

    def _nearest_centre(self, reduced):
        return self.nearest_centre_.kneighbors(np.asarray(reduced, dtype=np.float32), return_distance=False)[:, 0]

    def _predict_reduced(self, reduced):
        return self.centre_labels_[self._nearest_centre(reduced)]
