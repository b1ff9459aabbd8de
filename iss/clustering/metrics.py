"""Clustering quality: silhouettes (overall, per cluster, per picture), Davies-Bouldin,
Calinski-Harabasz, and — when true labels are known — ACC (Hungarian-matched), NMI and ARI.

Noise (label -1, hdbscan) counts as its own label for the per-picture silhouettes (every
picture gets a value), while the overall silhouette, Davies-Bouldin and Calinski-Harabasz
are computed on the clustered (non-noise) pictures only, the usual convention for density
clusterings; ``noise_fraction`` says how many were left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    normalized_mutual_info_score,
    silhouette_samples,
)
from sklearn.metrics.cluster import contingency_matrix
from sklearn.utils import check_random_state

# exact per-picture silhouettes cost O(n^2) distances; above this many pictures they are
# estimated against a random reference sample of that size (unbiased, error ~1/sqrt(size))
SILHOUETTE_EXACT_MAX = 20000


def cluster_accuracy(y_true, y_pred) -> float:
    """Best accuracy over one-to-one matchings of predicted clusters to true classes.

    The matching maximises agreement (Hungarian algorithm on the contingency matrix,
    ``scipy.optimize.linear_sum_assignment``); unmatched clusters count as errors.

    Parameters
    ----------
    y_true, y_pred : array-like, shape (n,)
        Any hashable labels (strings allowed).

    Returns
    -------
    float in [0, 1]
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of the same length, got {y_true.shape} and {y_pred.shape}")
    if len(y_true) == 0:
        raise ValueError("cluster_accuracy needs at least one sample")
    table = contingency_matrix(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / len(y_true))


def external_metrics(y_true, y_pred) -> dict[str, float]:
    """``{"acc", "nmi", "ari"}`` of a clustering against known labels."""
    return {
        "acc": cluster_accuracy(y_true, y_pred),
        "nmi": float(normalized_mutual_info_score(y_true, y_pred)),
        "ari": float(adjusted_rand_score(y_true, y_pred)),
    }


def silhouette_per_sample(X, labels, exact_max: int = SILHOUETTE_EXACT_MAX, random_state=0,
                          chunk: int = 2048) -> np.ndarray:
    """Silhouette of every sample, exact up to ``exact_max`` samples, estimated above.

    Same definition as ``sklearn.metrics.silhouette_samples`` (equal to it up to rounding,
    tested), computed with one distance block and one matrix product per chunk of rows
    instead of a Python loop over rows (several times faster on 10^4 samples). Above
    ``exact_max`` samples the mean distances to each cluster are taken over a random
    reference sample of ``exact_max`` points, so the cost is O(n * exact_max), not O(n^2).

    Parameters
    ----------
    X : ndarray, shape (n, d)
    labels : ndarray of int, shape (n,)
    exact_max : int
    random_state : int
    chunk : int
        Rows per distance block (memory ~ chunk * min(n, exact_max) * 8 bytes).

    Returns
    -------
    ndarray of float, shape (n,)
        In [-1, 1]; 0 for samples alone in their cluster, and all 0 when there is one label.
    """
    X = np.asarray(X, dtype=np.float64)
    X = (X - X.mean(axis=0)).astype(np.float32)  # centred: small norms keep float32 distances accurate
    labels = np.asarray(labels)
    n = len(labels)
    values, codes = np.unique(labels, return_inverse=True)
    codes = codes.ravel()
    if len(values) < 2 or len(values) >= n:
        return np.zeros(n)
    exact = n <= exact_max
    ref = np.arange(n) if exact else np.sort(check_random_state(random_state).choice(n, size=exact_max, replace=False))
    in_ref = np.zeros(n, dtype=bool)
    in_ref[ref] = True
    onehot = np.zeros((len(ref), len(values)), dtype=np.float32)
    onehot[np.arange(len(ref)), codes[ref]] = 1.0
    ref_counts = onehot.sum(axis=0, dtype=np.float64)
    ref_X = X[ref]
    ref_sq = np.einsum("ij,ij->i", ref_X, ref_X)
    out = np.empty(n)
    for start in range(0, n, chunk):
        block = X[start:start + chunk]
        rows = np.arange(len(block))
        # squared distances by the |x|^2 + |y|^2 - 2xy expansion, in place (one BLAS call)
        d = block @ ref_X.T
        d *= -2.0
        d += np.einsum("ij,ij->i", block, block)[:, None]
        d += ref_sq[None, :]
        np.maximum(d, 0.0, out=d)
        np.sqrt(d, out=d)
        if exact:  # exact zeros on the diagonal (the expansion leaves rounding there)
            d[rows, rows + start] = 0.0
        sums = (d @ onehot).astype(np.float64)  # (rows, n_labels): distance sums to each cluster
        own = codes[start:start + chunk]
        own_counts = ref_counts[own] - in_ref[start:start + chunk]  # a point is not its own neighbour
        with np.errstate(divide="ignore", invalid="ignore"):
            a = sums[rows, own] / own_counts
            means = sums / ref_counts[None, :]
            means[rows, own] = np.inf
            b = means.min(axis=1)
            s = (b - a) / np.maximum(a, b)
        s[~np.isfinite(s) | (own_counts <= 0)] = 0.0
        out[start:start + chunk] = s
    return out


def clustering_metrics(X, labels, y_true=None, silhouettes=None, random_state=0) -> dict:
    """Every quality figure of one clustering.

    Parameters
    ----------
    X : array-like, shape (n, d)
        The features the clusters were formed in (for silhouettes and the internal scores).
    labels : array-like of int, shape (n,)
        -1 = noise.
    y_true : array-like, shape (n,), optional
        Known labels (evaluation only): adds ``acc``, ``nmi``, ``ari``.
    silhouettes : ndarray, shape (n,), optional
        Per-sample silhouettes already computed by :func:`silhouette_per_sample`.
    random_state : int

    Returns
    -------
    dict
        ``n_samples``, ``n_clusters`` (without noise), ``noise_fraction``, ``cluster_sizes``
        ({label: n}), ``silhouette`` (mean over non-noise samples), ``silhouette_per_cluster``
        ({label: mean}), ``silhouette_exact`` (False when estimated), ``davies_bouldin``,
        ``calinski_harabasz`` (None when fewer than 2 clusters), and ``acc``/``nmi``/``ari``.
        Label keys are strings (the dict goes to JSON).
    """
    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels).astype(int)
    if len(X) != len(labels):
        raise ValueError(f"X has {len(X)} rows but labels has {len(labels)}")
    if silhouettes is None:
        silhouettes = silhouette_per_sample(X, labels, random_state=random_state)
    clustered = labels >= 0
    values, counts = np.unique(labels, return_counts=True)
    n_clusters = int((values >= 0).sum())
    out: dict = {
        "n_samples": int(len(labels)),
        "n_clusters": n_clusters,
        "noise_fraction": float(1.0 - clustered.mean()),
        "cluster_sizes": {str(v): int(c) for v, c in zip(values, counts)},
        "silhouette_exact": bool(len(labels) <= SILHOUETTE_EXACT_MAX),
        "silhouette_per_cluster": {str(v): float(silhouettes[labels == v].mean()) for v in values},
        "silhouette": None, "davies_bouldin": None, "calinski_harabasz": None,
    }
    if n_clusters >= 2 and clustered.sum() > n_clusters:
        if clustered.all():
            out["silhouette"] = float(silhouettes.mean())
        else:  # silhouettes of the clustered points among themselves only
            sub = silhouette_per_sample(X[clustered], labels[clustered], random_state=random_state)
            out["silhouette"] = float(sub.mean())
        out["davies_bouldin"] = float(davies_bouldin_score(X[clustered], labels[clustered]))
        out["calinski_harabasz"] = float(calinski_harabasz_score(X[clustered], labels[clustered]))
    if y_true is not None:
        out.update(external_metrics(np.asarray(y_true), labels))
    return out


def silhouette_sweep(X, k_values: Iterable[int], cluster: Callable[[int], np.ndarray],
                     sample_size: int = 4000, random_state=0) -> dict[int, float]:
    """Silhouette of the clustering given by ``cluster(k)`` for each k (the automatic-k curve).

    Parameters
    ----------
    X : ndarray, shape (n, d)
        Features the clustering works in.
    k_values : iterable of int
    cluster : callable
        ``cluster(k) -> labels (n,)``.
    sample_size : int
        Silhouettes are averaged over this many random samples (the same ones for every k),
        enough to rank the k's at a fraction of the O(n^2) cost.

    Returns
    -------
    dict
        ``{k: mean silhouette}``; -1.0 when ``cluster(k)`` yields fewer than 2 clusters.
    """
    X = np.asarray(X, dtype=np.float64)
    rng = check_random_state(random_state)
    idx = np.sort(rng.choice(len(X), size=sample_size, replace=False)) if len(X) > sample_size else np.arange(len(X))
    curve = {}
    for k in k_values:
        labels = np.asarray(cluster(int(k)))[idx]
        n_labels = len(np.unique(labels))
        curve[int(k)] = (float(silhouette_samples(X[idx], labels).mean())
                         if 2 <= n_labels < len(idx) else -1.0)
    return curve


def best_k(curve: dict[int, float]) -> int:
    """The k with the highest silhouette (the smallest such k on ties)."""
    return max(sorted(curve), key=lambda k: curve[k])


# --- automatic k by modularity on the neighbour graph ----------------------------------------------
#
# Why not the silhouette alone: on UMAP embeddings of data whose kinds touch (Fashion-MNIST's tops,
# MNIST's 4/7/9), the silhouette is highest where whole groups of kinds are merged, so a sweep
# under-counts (clustimage's finds 4 kinds on Fashion-MNIST). Modularity (Newman 2006) scores a
# partition by how many neighbour-graph edges stay inside clusters beyond what cluster sizes alone
# would give; splitting a large group pays when few edges cross the cut, so kinds that touch but
# are not mixed get their own clusters, while cutting a homogeneous group costs more edges than it
# gains. Its curve is flat near the top, so the smallest k within ``MODULARITY_TOLERANCE`` of the
# best is kept (parsimony, as in the one-standard-error rule).

MODULARITY_NEIGHBORS = 15
MODULARITY_TOLERANCE = 0.01


def knn_graph(X, n_neighbors: int = MODULARITY_NEIGHBORS):
    """Symmetric k-nearest-neighbour graph of the rows of ``X``: sparse (n, n), 1 where either is a
    neighbour of the other (exact neighbours, Euclidean).

    Parameters
    ----------
    X : array-like, shape (n, d)
    n_neighbors : int, default=15
        Capped at n - 1.

    Returns
    -------
    scipy.sparse.csr_matrix of float64, shape (n, n)
    """
    from scipy import sparse

    from iss.clustering.umap_reducer import ExactKNNIndex

    X = np.ascontiguousarray(X, dtype=np.float32)
    n = len(X)
    k = int(min(n_neighbors, n - 1))
    if k < 1:
        raise ValueError(f"a neighbour graph needs at least 2 samples, got {n}")
    neighbours = ExactKNNIndex(X, "euclidean").others(k)
    rows = np.repeat(np.arange(n), k)
    graph = sparse.csr_matrix((np.ones(n * k), (rows, neighbours.ravel())), shape=(n, n))
    graph = graph.maximum(graph.T)
    return graph.tocsr()


def modularity(graph, labels) -> float:
    """Newman's modularity of a partition of a weighted undirected graph.

    ``Q = sum_c [ w_in(c) / W - (d(c) / W)^2 ]`` with ``W`` the total degree, ``w_in(c)`` twice the
    weight inside cluster c and ``d(c)`` its total degree (Newman, PNAS 103(23), 2006). Noise
    (label -1) counts as one cluster.

    Parameters
    ----------
    graph : sparse matrix, shape (n, n), symmetric
    labels : array-like of int, shape (n,)

    Returns
    -------
    float in [-0.5, 1]
    """
    from scipy import sparse

    labels = np.asarray(labels)
    codes = np.unique(labels, return_inverse=True)[1].ravel()
    onehot = sparse.csr_matrix((np.ones(len(codes)), (np.arange(len(codes)), codes)),
                               shape=(len(codes), int(codes.max()) + 1))
    total = float(graph.sum())
    if total == 0:
        return 0.0
    inside = (onehot.T @ graph @ onehot).diagonal().sum()
    degrees = np.asarray(onehot.T @ np.asarray(graph.sum(axis=1)).ravel()).ravel()
    return float(inside / total - ((degrees / total) ** 2).sum())


def modularity_sweep(graph, k_values: Iterable[int], cluster: Callable[[int], np.ndarray]) -> dict[int, float]:
    """Modularity of the clustering ``cluster(k)`` on ``graph`` for each k: ``{k: Q}``."""
    return {int(k): modularity(graph, cluster(int(k))) for k in k_values}


def near_best(curve: dict[int, float], tolerance: float) -> list[int]:
    """The k whose value is within ``tolerance`` (relative) of the curve's best, in the curve's order."""
    top = max(curve.values())
    return [k for k, v in curve.items() if v >= top - tolerance * abs(top)]


def parsimonious_k(curve: dict[int, float], tolerance: float = MODULARITY_TOLERANCE) -> int:
    """The smallest k whose value is within ``tolerance`` (relative) of the curve's best."""
    return min(near_best(curve, tolerance))


def choose_k(features, k_values: Iterable[int], cluster: Callable[[int], np.ndarray], criterion: str = "modularity",
             graph_features=None, random_state=0) -> tuple[int, dict[int, float]]:
    """Automatic number of clusters: the k of ``k_values`` whose clustering scores best.

    Parameters
    ----------
    features : ndarray, shape (n, r)
        The space the clusters are formed in (for the silhouette).
    k_values : iterable of int
    cluster : callable
        ``cluster(k) -> labels (n,)``.
    criterion : {"modularity", "silhouette"}, default="modularity"
        ``modularity``: on the k-NN graph of ``graph_features`` (default ``features``), smallest
        k within ``MODULARITY_TOLERANCE`` of the best (see the notes above); ``silhouette``: the
        best mean silhouette.
    graph_features : ndarray, shape (n, d), optional
        The features the neighbour graph is built on (the clustering's input, before UMAP).

    Returns
    -------
    k : int
    curve : dict
        ``{k: score}``.
    """
    if criterion == "silhouette":
        curve = silhouette_sweep(features, k_values, cluster, random_state=random_state)
        return best_k(curve), curve
    if criterion != "modularity":
        raise ValueError(f"k_criterion={criterion!r}: expected 'modularity' or 'silhouette'")
    graph = knn_graph(features if graph_features is None else graph_features)
    curve = modularity_sweep(graph, k_values, cluster)
    return parsimonious_k(curve), curve
