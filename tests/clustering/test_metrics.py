"""Clustering metrics: Hungarian accuracy, silhouettes (exact and estimated), the k sweep."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import silhouette_samples

from iss.clustering.metrics import (
    best_k,
    cluster_accuracy,
    clustering_metrics,
    external_metrics,
    silhouette_per_sample,
    silhouette_sweep,
)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(900, 6, centers=4, cluster_std=1.5, random_state=0)
    return X, y


def test_accuracy_of_a_permuted_labelling_is_one():
    y = np.repeat([0, 1, 2, 3], 25)
    permuted = np.array([2, 3, 0, 1])[y]
    assert cluster_accuracy(y, permuted) == 1.0
    assert external_metrics(y, permuted) == {"acc": 1.0, "nmi": 1.0, "ari": 1.0}


def test_accuracy_uses_the_best_one_to_one_matching():
    y_true = np.array(["a"] * 6 + ["b"] * 4)
    y_pred = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])  # best: 0->a (4 right), 1->b (4 right)
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(0.8)
    # more clusters than classes: an unmatched cluster counts as wrong
    assert cluster_accuracy([0, 0, 1, 1], [0, 1, 2, 3]) == pytest.approx(0.5)


def test_accuracy_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="same length"):
        cluster_accuracy([0, 1, 2], [0, 1])


def test_silhouettes_equal_scikit_learns(blobs):
    X, y = blobs
    np.testing.assert_allclose(silhouette_per_sample(X, y), silhouette_samples(X, y), atol=1e-5)
    np.testing.assert_allclose(silhouette_per_sample(X, y, chunk=100), silhouette_samples(X, y), atol=1e-5)


def test_silhouettes_are_estimated_on_a_reference_sample_above_the_limit(blobs):
    X, y = blobs
    exact = silhouette_samples(X, y)
    estimated = silhouette_per_sample(X, y, exact_max=300, random_state=0)
    assert abs(estimated.mean() - exact.mean()) < 0.02
    assert np.abs(estimated - exact).max() < 0.15
    assert np.corrcoef(estimated, exact)[0, 1] > 0.95


def test_silhouettes_of_degenerate_labellings_are_zero(blobs):
    X, _ = blobs
    assert (silhouette_per_sample(X, np.zeros(len(X), dtype=int)) == 0).all()
    singletons = np.r_[np.zeros(len(X) - 1, dtype=int), 1]
    assert silhouette_per_sample(X, singletons)[-1] == 0.0


def test_clustering_metrics_report_every_figure(blobs):
    X, y = blobs
    out = clustering_metrics(X, y, y_true=y)
    assert out["n_clusters"] == 4 and out["n_samples"] == len(X) and out["noise_fraction"] == 0.0
    assert out["silhouette"] == pytest.approx(silhouette_samples(X, y).mean(), abs=1e-5)
    assert set(out["silhouette_per_cluster"]) == {"0", "1", "2", "3"}
    assert sum(out["cluster_sizes"].values()) == len(X)
    assert out["davies_bouldin"] > 0 and out["calinski_harabasz"] > 0
    assert out["acc"] == out["nmi"] == out["ari"] == 1.0


def test_noise_is_its_own_label_per_picture_but_left_out_of_the_overall_scores(blobs):
    X, y = blobs
    labels = y.copy()
    labels[:50] = -1
    out = clustering_metrics(X, labels)
    assert out["n_clusters"] == 4
    assert out["noise_fraction"] == pytest.approx(50 / len(X))
    assert "-1" in out["silhouette_per_cluster"] and out["cluster_sizes"]["-1"] == 50
    kept = labels >= 0
    assert out["silhouette"] == pytest.approx(silhouette_samples(X[kept], labels[kept]).mean(), abs=1e-5)


def test_one_cluster_has_no_internal_scores(blobs):
    X, _ = blobs
    out = clustering_metrics(X, np.zeros(len(X), dtype=int))
    assert out["silhouette"] is None and out["davies_bouldin"] is None and out["n_clusters"] == 1


def test_the_silhouette_sweep_peaks_at_the_true_k(blobs):
    X, _ = blobs
    curve = silhouette_sweep(X, range(2, 9), lambda k: KMeans(k, n_init=3, random_state=0).fit_predict(X),
                             sample_size=500)
    assert sorted(curve) == list(range(2, 9))
    assert best_k(curve) == 4
    assert all(-1.0 <= v <= 1.0 for v in curve.values())


def test_modularity_of_two_separate_cliques():
    from scipy import sparse

    from iss.clustering.metrics import modularity

    block = np.ones((5, 5)) - np.eye(5)
    graph = sparse.csr_matrix(np.block([[block, np.zeros((5, 5))], [np.zeros((5, 5)), block]]))
    assert modularity(graph, [0] * 5 + [1] * 5) == pytest.approx(0.5)
    assert modularity(graph, [0] * 10) == pytest.approx(0.0)
    assert modularity(graph, [0, 1] * 5) < 0


def test_automatic_k_by_modularity_prefers_the_smallest_near_best_k():
    from sklearn.datasets import make_blobs

    from iss.clustering.metrics import choose_k, knn_graph, parsimonious_k

    assert parsimonious_k({2: 0.5, 3: 0.805, 4: 0.808, 5: 0.81}) == 3  # within 1 % of the best
    assert parsimonious_k({2: 0.5, 3: 0.70, 4: 0.805, 5: 0.81}) == 4
    X, y = make_blobs(400, 6, centers=4, cluster_std=1.0, center_box=(-20, 20), random_state=1)
    graph = knn_graph(X, 10)
    assert graph.shape == (400, 400) and (graph != graph.T).nnz == 0
    from sklearn.cluster import KMeans

    k, curve = choose_k(X, range(2, 9), lambda kk: KMeans(kk, n_init=3, random_state=0).fit_predict(X))
    assert k == 4 and set(curve) == set(range(2, 9))
    k, _ = choose_k(X, range(2, 9), lambda kk: KMeans(kk, n_init=3, random_state=0).fit_predict(X), "silhouette")
    assert k == 4
    with pytest.raises(ValueError, match="k_criterion"):
        choose_k(X, range(2, 4), lambda kk: np.zeros(len(X)), "gap")
