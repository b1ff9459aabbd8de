"""SCAN heads (iss.clustering.scan) and n2d's ``method="scan"``: exact gradients, recovery of
blobs, reproducibility, save/load, the even use of clusters, parameter errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from iss.clustering import make_clustering
from iss.clustering.base import ClusteringBase
from iss.clustering.scan import LOSS_TOLERANCE, SCANClusterer, _full_losses, _Heads

N2D_SCAN = dict(n_clusters=5, n_neighbors=10, n_epochs=100, n_init=3, method="scan", scan_neighbors=10)


@pytest.fixture(scope="module")
def n2d_scan(blobs):
    return make_clustering("n2d", **N2D_SCAN).fit(blobs[0])


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    heads = _Heads(3, 4, 3, 2, rng)
    heads.params = [p.astype(np.float64) + rng.normal(0, 0.1, p.shape) for p in heads.params]
    anchors, partners, weight = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)), 2.0

    def loss():
        p_a, p_b = heads.forward(anchors)[1], heads.forward(partners)[1]
        consistency = -np.log((p_a * p_b).sum(-1)).mean(0)
        mean = p_a.mean(0)
        return float((consistency + weight * (mean * np.log(mean)).sum(-1)).sum())

    grads = heads.gradients(anchors, partners, weight)
    for param, grad in zip(heads.params, grads):
        for index in [(0, 0, 0), (1, 2, 1)] if param.ndim == 3 else [(0, 1), (1, 2)]:
            saved = param[index]
            param[index] = saved + 1e-6
            up = loss()
            param[index] = saved - 1e-6
            down = loss()
            param[index] = saved
            assert grad[index] == pytest.approx((up - down) / 2e-6, rel=1e-4, abs=1e-8)


def test_n2d_scan_recovers_blobs_and_predicts_new_points(n2d_scan, blobs):
    _, y, X_new, y_new = blobs
    assert adjusted_rand_score(y, n2d_scan.labels_) >= 0.95
    assert adjusted_rand_score(y_new, n2d_scan.predict(X_new)) >= 0.95
    assert isinstance(n2d_scan.clusterer_, SCANClusterer)
    assert n2d_scan.clusterer_.head_losses_.shape == (3,)


def test_n2d_scan_is_reproducible_and_survives_save_load(n2d_scan, blobs, tmp_path):
    X, _, X_new, _ = blobs
    again = clone(n2d_scan).fit(X)
    np.testing.assert_array_equal(again.labels_, n2d_scan.labels_)
    loaded = ClusteringBase.load(n2d_scan.save(tmp_path / "scan"))
    np.testing.assert_array_equal(loaded.predict(X_new), n2d_scan.predict(X_new))


def test_even_use_merges_the_two_islands_of_one_group():
    """Groups of 200, 200, 200 and a fourth split into two far islands of 100: with 4 clusters, a
    mixture or k-means spends two on the islands and merges two groups; the even-use term keeps
    the four groups. Most heads split a group instead; the one that does not has a clearly lower
    loss and is kept."""
    centres = np.array([[0, 0], [6, 0], [0, 6], [30, 30], [-30, 30]], dtype=float)
    X, islands = make_blobs([200, 200, 200, 100, 100], 2, centers=centres, cluster_std=1.0, random_state=0)
    y = np.minimum(islands, 3)
    assert adjusted_rand_score(y, KMeans(4, n_init=10, random_state=0).fit_predict(X)) < 0.8
    model = SCANClusterer(n_clusters=4, n_neighbors=10, n_heads=8).fit(X)
    assert adjusted_rand_score(y, model.labels_) >= 0.95
    assert model.predict_proba(X[:5]).shape == (5, 4)
    np.testing.assert_allclose(model.predict_proba(X[:5]).sum(1), 1.0, rtol=1e-5)


def test_kept_head_has_one_of_the_lowest_losses(blobs):
    X = blobs[0]
    model = SCANClusterer(n_clusters=5, n_neighbors=10, n_heads=6, min_steps=50).fit(X)
    assert model.head_losses_[model.head_] <= model.head_losses_.min() + LOSS_TOLERANCE
    probs = np.stack([model.predict_proba(X)] * 2, axis=1)
    neighbours = np.tile(np.arange(len(X))[:, None], (1, 2))  # every point its own neighbour
    losses = _full_losses(probs, neighbours, 0.0)
    assert losses[0] == pytest.approx(losses[1])
    assert losses[0] >= 0


@pytest.mark.parametrize("params, message", [
    (dict(entropy_weight=-1.0), r"entropy_weight=-1.0: expected a number >= 0"),
    (dict(n_heads=0), r"n_heads=0: expected an int >= 1"),
    (dict(n_neighbors=500), r"n_neighbors=500"),
])
def test_a_bad_parameter_names_itself(blobs, params, message):
    with pytest.raises(ValueError, match=message):
        SCANClusterer(**params).fit(blobs[0])


def test_neighbours_of_the_wrong_shape_are_refused(blobs):
    with pytest.raises(ValueError, match=r"neighbours has shape \(3, 2\)"):
        SCANClusterer(n_neighbors=5).fit(blobs[0], neighbours=np.zeros((3, 2), dtype=int))


def test_n2d_scan_checks_its_parameters(blobs):
    with pytest.raises(ValueError, match=r"scan_neighbors=500"):
        make_clustering("n2d", **{**N2D_SCAN, "scan_neighbors": 500}).fit(blobs[0])
    with pytest.raises(ValueError, match=r"entropy_weight=-2"):
        make_clustering("n2d", **{**N2D_SCAN, "entropy_weight": -2}).fit(blobs[0])
