"""N2D ("Not Too Deep" clustering, McConville et al.): UMAP on the latents, then k-means, a
Gaussian mixture or SCAN heads on the UMAP embedding.

``method="scan"`` (:mod:`iss.clustering.scan`) trains small heads on the UMAP embedding so that
each latent's nearest neighbours (in the latent space, ``scan_neighbors`` of them) share its
cluster while all clusters are used evenly. On Fashion-MNIST it lifts ACC / NMI from
0.60-0.67 / 0.68-0.70 (the mixture) to 0.73-0.75 / 0.71: the mixture spends two clusters on the
two shapes of bags and merges pullovers, coats and shirts. It assumes clusters of comparable
sizes. The latent neighbours are exact (brute force, quadratic in the number of latents: about
15 s for 70,000 on 2 cores).

Small collections: below ``direct_below`` distinct pictures (default 50) there is no UMAP.
UMAP's neighbour graph (20 neighbours) then spans a large share of the collection and the layout
carries little of its structure: on the 30 real ISS frames of ``shared/real`` UMAP + k-means with
the true k scores ARI 0.51-0.82 while k-means on the same features scores 1.00, and the
graph-based automatic k (modularity) finds 2 kinds for 5. So k-means runs on the features
themselves, k is chosen by the silhouette there (it finds the 5), and the plot is their first two
principal components. The threshold was measured on random subsets of the demo and of
Fashion-MNIST (``benchmarks/fidelity.py`` sets): at 30 pictures the direct path scores ARI
0.66 / 0.30 against UMAP's 0.57 / 0.11, at 60 both are level (0.56 / 0.12-0.18), from 100 on
UMAP is ahead (0.61 / 0.24 against 0.54 / 0.19).

Plot coordinates: with ``n_components == 2`` they are the clustering embedding itself; with
more components a second, 2-D UMAP is fitted on the same neighbour graph (``plot="umap"``,
default) or the first two components are used (``plot="first"``). New points go through
``UMAP.transform`` (umap's own out-of-sample method).
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

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
from iss.clustering.final_steps import FINAL_STEPS, final_step
from iss.clustering.metrics import MODULARITY_TOLERANCE, choose_k, near_best
from iss.clustering.stability import MODULARITY_WINDOW, flat_top_k, resampled_runs, stability_curve, stable_k
from iss.clustering.umap_compat import import_umap
from iss.clustering.umap_reducer import ExactKNNIndex, UMAPReducer


# Below this many distinct pictures, N2D clusters the features directly (module docstring).
DIRECT_BELOW = 50


class UMAPClusteringMixin:
    """UMAP parameters, checks and reduction shared by ``n2d`` and ``hdbscan``."""

    def _check_umap_params(self, X: np.ndarray, layout: bool = True) -> None:
        check_int("n_neighbors", self.n_neighbors, 2)
        check_float("min_dist", self.min_dist, 0.0, 1.0)
        check_int("n_components", self.n_components, 2)
        if not isinstance(self.metric, str) or not self.metric:
            raise ValueError(f"metric={self.metric!r}: expected a metric name such as 'euclidean' or 'cosine'")
        if self.n_epochs is not None:
            check_int("n_epochs", self.n_epochs, 1)
        check_choice("knn", self.knn, ("auto", "exact", "nndescent"))
        check_choice("plot", self.plot, ("umap", "first"))
        check_int("random_state", self.random_state, 0)
        if layout:
            check_enough_samples(f"n_neighbors={self.n_neighbors}", len(X), self.n_neighbors + 1,
                                 "UMAP's neighbour graph")

    def _fit_reducer(self, X: np.ndarray) -> None:
        self.reducer_ = UMAPReducer(n_neighbors=self.n_neighbors, min_dist=self.min_dist,
                                    n_components=self.n_components, metric=self.metric, n_epochs=self.n_epochs,
                                    knn=self.knn, plot=self.plot, random_state=self.random_state).fit(X)
        self.reduced_ = self.reducer_.embedding_
        self.embedding_ = self.reducer_.embedding_2d_

    def _reduce(self, X: np.ndarray) -> np.ndarray:
        return self.reducer_.transform(X)

    def _coords(self, X: np.ndarray, reduced: np.ndarray) -> np.ndarray:
        return self.reducer_.transform_2d(X, reduced)

    @classmethod
    def _before_load(cls) -> None:
        import_umap()  # unpickling the UMAP objects imports umap: do it without TensorFlow, with caching


class N2DClustering(UMAPClusteringMixin, ClusteringBase):
    """UMAP then k-means or a Gaussian mixture.

    Parameters
    ----------
    n_clusters : int or "auto", default=6
        "auto" picks the k of ``k_range`` by ``k_criterion`` (curve in ``k_sweep_``).
    k_range : (int, int), default=(2, 12)
    k_criterion : {"stability", "modularity", "silhouette"}, default="stability"
        How "auto" scores a k: modularity of the clusters on the features' k-NN graph (smallest k
        within 1 % of the best), or the mean silhouette in the UMAP space
        (:func:`iss.clustering.metrics.choose_k`); ``stability``: the k that reproduces best over
        resampled UMAP layouts among those within 1 % of the best modularity, unless a smaller k
        almost as modular reproduces much better (:func:`iss.clustering.stability.flat_top_k`,
        :func:`iss.clustering.stability.stable_k`; curve in ``k_stability_``).
    method : {"kmeans", "gmm", "scan"}, default="kmeans"
        The final step: a key of :data:`iss.clustering.final_steps.FINAL_STEPS`.
    n_neighbors : int, default=20
    min_dist : float, default=0.0
    n_components : int, default=2
        UMAP dimensions the clustering works in (the paper uses the number of clusters).
    metric : str, default="euclidean"
    n_epochs : int or None, default=None
    knn : {"auto", "exact", "nndescent"}, default="auto"
    plot : {"umap", "first"}, default="umap"
    n_init : int, default=10
        Initialisations of k-means / the mixture (best kept); heads of ``scan``.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        For ``method="gmm"``.
    scan_neighbors : int, default=50
        For ``method="scan"``: neighbours (in the latent space) that should share a cluster.
    entropy_weight : float, default=5.0
        For ``method="scan"``: weight of the even use of clusters.
    direct_below : int, default=50
        With fewer distinct pictures than this, no UMAP: k-means on the features themselves, k by
        their silhouette, plot on their first two principal components (module docstring; 0
        turns it off). ``method`` is then ignored: a mixture's covariances or SCAN's neighbours
        cannot be estimated from so few pictures.
    random_state : int, default=0

    Attributes
    ----------
    labels_ : ndarray of int, shape (n_samples,)
        Clusters numbered by decreasing size.
    n_clusters_ : int
    layout_ : {"umap", "direct"}
        Whether the clusters were formed on the UMAP embedding or on the features themselves
        (fewer distinct pictures than ``direct_below``).
    reduced_ : ndarray, shape (n_samples, n_components), or (n_samples, n_features) when direct
        The space the clusters were formed in: the UMAP embedding of the training latents.
    embedding_ : ndarray, shape (n_samples, 2)
        Plot coordinates of the training latents.
    reducer_ : UMAPReducer, or PCA (2 components, plot only) when direct
    clusterer_ : KMeans, GaussianMixture, SCANClusterer...
        The fitted final step.
    k_sweep_ : dict or None
        ``{k: score}`` when ``n_clusters="auto"``.
    k_sweep_criterion_ : {"modularity", "silhouette"} or None
        What ``k_sweep_`` scores.
    k_stability_ : dict or None
        ``{k: mean pairwise ARI}`` over resampled layouts, with ``k_criterion="stability"``.
    k_reason_ : str or None
        Why "auto" chose its k, with ``k_criterion="stability"``.
    """

    clustering_type = "n2d"

    def __init__(self, n_clusters=6, k_range=(2, 12), k_criterion="stability", method="kmeans", n_neighbors=20, min_dist=0.0,
                 n_components=2, metric="euclidean", n_epochs=None, knn="auto", plot="umap", n_init=10,
                 covariance_type="full", scan_neighbors=50, entropy_weight=5.0, direct_below=DIRECT_BELOW,
                 random_state=0):
        self.n_clusters = n_clusters
        self.k_range = k_range
        self.k_criterion = k_criterion
        self.method = method
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.n_components = n_components
        self.metric = metric
        self.n_epochs = n_epochs
        self.knn = knn
        self.plot = plot
        self.n_init = n_init
        self.covariance_type = covariance_type
        self.scan_neighbors = scan_neighbors
        self.entropy_weight = entropy_weight
        self.direct_below = direct_below
        self.random_state = random_state

    def _check_params(self, X):
        n_clusters, (low, high) = check_n_clusters(self.n_clusters, self.k_range)
        check_choice("k_criterion", self.k_criterion, ("stability", "modularity", "silhouette"))
        check_choice("method", self.method, tuple(FINAL_STEPS))
        check_int("n_init", self.n_init, 1)
        check_choice("covariance_type", self.covariance_type, ("full", "tied", "diag", "spherical"))
        check_int("scan_neighbors", self.scan_neighbors, 1)
        check_float("entropy_weight", self.entropy_weight, 0.0)
        check_int("direct_below", self.direct_below, 0)
        final_step(self.method).check(self, X)
        self._check_umap_params(X, layout=len(X) >= self.direct_below)
        k_max = high if n_clusters == "auto" else n_clusters
        check_enough_samples(f"n_clusters={self.n_clusters}", len(X), k_max + 1, "one sample per cluster and more")

    def latent_neighbours(self, X: np.ndarray) -> np.ndarray | None:
        """Indices ``(n, scan_neighbors)`` of each latent's nearest others (``metric``) when the final step
        needs them (``scan``); else None."""
        if not final_step(self.method).needs_neighbours:
            return None
        return ExactKNNIndex(X, self.metric).others(self.scan_neighbors)

    def fit_clusterer(self, k: int, features: np.ndarray, neighbours: np.ndarray | None = None):
        """The final step alone (:data:`iss.clustering.final_steps.FINAL_STEPS`): k-means, mixture, SCAN
        heads (``neighbours`` from :meth:`latent_neighbours`)... fitted on UMAP ``features`` (n, n_components)."""
        return final_step(self.method).fit(self, k, features, neighbours)

    def _fit(self, X):
        self.k_sweep_ = self.k_stability_ = self.k_reason_ = self.k_sweep_criterion_ = None
        if len(X) < self.direct_below:
            self._fit_direct(X)
            return
        self.layout_ = "umap"
        self._fit_reducer(X)
        features = self.reduced_.astype(np.float64)
        neighbours = self.latent_neighbours(X)  # scan: more of them than UMAP's graph keeps
        k = self.n_clusters
        if k == "auto":
            k_values = range(self.k_range[0], self.k_range[1] + 1)
            self.k_sweep_criterion_ = "modularity" if self.k_criterion == "stability" else self.k_criterion
            k, self.k_sweep_ = choose_k(
                features, k_values, lambda kk: self.fit_clusterer(kk, features, neighbours).predict(features),
                self.k_sweep_criterion_, graph_features=X, random_state=self.random_state)
            if self.k_criterion == "stability":
                k = self._stable_k(X, k)
        self._set_labels(self.fit_clusterer(k, features, neighbours), features)

    def _fit_direct(self, X: np.ndarray) -> None:
        """Fewer distinct pictures than ``direct_below``: k-means on ``X`` itself (module docstring)."""
        self.layout_ = "direct"
        features = X.astype(np.float64)
        self.reduced_ = X.astype(np.float32)
        self.reducer_ = PCA(n_components=min(2, *X.shape), random_state=self.random_state).fit(features)
        self.embedding_ = self._coords(X, self.reduced_)

        def kmeans(k: int) -> KMeans:
            return KMeans(n_clusters=k, n_init=self.n_init, random_state=self.random_state).fit(features)

        k = self.n_clusters
        if k == "auto":
            high = min(self.k_range[1], len(X) - 1)
            self.k_sweep_criterion_ = "silhouette"
            k, self.k_sweep_ = choose_k(features, range(min(self.k_range[0], high), high + 1),
                                        lambda kk: kmeans(kk).labels_, "silhouette", random_state=self.random_state)
            self.k_reason_ = (f"k={k} by the silhouette of k-means on the features themselves: {len(X)} distinct "
                              f"pictures are fewer than direct_below={self.direct_below}, too few for UMAP's "
                              f"neighbour graph")
        self._set_labels(kmeans(k), features)

    def _direct(self) -> bool:
        return getattr(self, "layout_", "umap") == "direct"  # (clusterings saved before it have no layout_)

    def _reduce(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float32) if self._direct() else super()._reduce(X)

    def _coords(self, X: np.ndarray, reduced: np.ndarray) -> np.ndarray:
        if not self._direct():
            return super()._coords(X, reduced)
        coords = np.zeros((len(X), 2), dtype=np.float32)  # one column stays 0 with a single feature
        coords[:, :self.reducer_.n_components_] = self.reducer_.transform(np.asarray(X, dtype=np.float64))
        return coords

    def _set_labels(self, clusterer, features: np.ndarray) -> None:
        self.clusterer_ = clusterer
        raw = clusterer.predict(features)
        self.label_map_ = size_order_map(raw)
        self.labels_ = apply_map(raw, self.label_map_)
        self.n_clusters_ = int(len(np.unique(self.labels_)))

    def _stable_k(self, X: np.ndarray, k: int) -> int:
        """``k_criterion="stability"``: the most reproducible k of modularity's flat top (``k`` is its
        smallest), checked against smaller k, on resampled layouts."""
        if len(X) < 2 * self.n_neighbors:  # too few pictures to resample: modularity alone
            self.k_reason_ = f"k={k} by modularity ({len(X)} pictures are too few to measure stability)"
            return k
        # k above the flat top can be neither its most reproducible k nor a smaller k: not measured
        highest = max(near_best(self.k_sweep_, MODULARITY_TOLERANCE))
        window = [kk for kk in near_best(self.k_sweep_, MODULARITY_WINDOW) if kk <= highest]
        runs = resampled_runs(X, n_neighbors=self.n_neighbors, n_components=self.n_components, metric=self.metric,
                              random_state=self.random_state)
        self.k_stability_ = stability_curve(runs, window, self.random_state)
        start = flat_top_k(self.k_sweep_, self.k_stability_)
        chosen, self.k_reason_ = stable_k(self.k_sweep_, self.k_stability_, start)
        if start != k:  # then k, the top's smallest, was measured too (stability_curve drops only large k)
            self.k_reason_ = (f"of the k within {MODULARITY_TOLERANCE:.0%} of the best modularity, k={start} reproduces "
                              f"best (ARI {self.k_stability_[start]:.3f}; their smallest, k={k}: "
                              f"{self.k_stability_[k]:.3f}); " + self.k_reason_)
        return chosen

    def _predict_reduced(self, reduced):
        raw = self.clusterer_.predict(np.asarray(reduced, dtype=np.float64))
        # a cluster the fitted data never landed in (possible with a mixture) gets a new number
        missing = sorted(set(np.unique(raw).tolist()) - set(self.label_map_))
        mapping = dict(self.label_map_)
        mapping.update({m: self.n_clusters_ + i for i, m in enumerate(missing)})
        return apply_map(raw, mapping)
