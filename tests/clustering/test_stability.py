"""Cluster stability under resampling and the k it keeps (iss.clustering.stability)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from iss.clustering import make_clustering
from iss.clustering.stability import resampled_runs, stability_curve, stable_k


def test_stable_k_keeps_a_smaller_almost_as_modular_k_that_reproduces_much_better():
    # the 2,000-frame demo's pixels, as measured: modularity rises past the six kinds, whose
    # clusters come back on every layout while the halves of kinds at k=8 do not
    modularity = {4: 0.716, 5: 0.728, 6: 0.747, 7: 0.765, 8: 0.783, 9: 0.780}
    stability = {6: 0.996, 7: 0.874, 8: 0.848}
    k, reason = stable_k(modularity, stability, 8)
    assert k == 6
    assert "0.996" in reason and "0.848" in reason and "k=8" in reason


def test_stable_k_keeps_modularity_s_k_when_no_smaller_k_is_clearly_more_stable():
    # MNIST-10k's autoencoder latents: 8, 9 and 10 reproduce alike, modularity's 10 stays
    modularity = {7: 0.779, 8: 0.797, 9: 0.808, 10: 0.813, 11: 0.814}
    assert stable_k(modularity, {8: 0.88, 9: 0.952, 10: 0.936}, 10)[0] == 10
    # a stabler k too far below the best modularity is not taken
    assert stable_k({3: 0.5, 6: 0.8}, {3: 1.0, 6: 0.6}, 6)[0] == 6
    assert "not measured" in stable_k({3: 0.5}, {}, 3)[1]


def test_blobs_reproduce_and_arbitrary_cuts_of_them_do_not():
    X, y = make_blobs(600, 8, centers=4, cluster_std=1.0, center_box=(-20, 20), random_state=3)
    runs = resampled_runs(X, n_runs=3, sample=500, n_neighbors=10, n_epochs=100)
    assert len(runs) == 3 and all(len(rows) == 400 and e.shape == (400, 2) for rows, e in runs)
    assert all(set(rows) <= set(range(600)) for rows, _ in runs)
    curve = stability_curve(runs, [4, 7])
    assert curve[4] > 0.95
    assert curve[7] < curve[4] - 0.05  # cutting the blobs into 7 changes with the layout


def test_resampling_settings_and_small_samples_are_checked():
    X = np.random.default_rng(0).normal(size=(30, 4))
    with pytest.raises(ValueError, match="n_runs=1"):
        resampled_runs(X, n_runs=1)
    with pytest.raises(ValueError, match="subsample=1.5"):
        resampled_runs(X, subsample=1.5)
    with pytest.raises(ValueError, match="30 pictures are too few.*n_neighbors=40"):
        resampled_runs(X, n_neighbors=40)


def test_n2d_auto_k_records_its_stability_and_why():
    X, y = make_blobs(400, 8, centers=5, cluster_std=1.0, center_box=(-20, 20), random_state=4)
    model = make_clustering("n2d", n_clusters="auto", k_range=(2, 8), n_neighbors=10, n_epochs=100,
                            n_init=3).fit(X.astype(np.float32))
    assert model.k_criterion == "stability"
    assert model.n_clusters_ == 5 and adjusted_rand_score(y, model.labels_) >= 0.95
    assert 5 in model.k_stability_ and model.k_stability_[5] > 0.9
    assert model.k_reason_.startswith("k=5")
    plain = make_clustering("n2d", n_clusters="auto", k_range=(2, 8), k_criterion="modularity", n_neighbors=10,
                            n_epochs=100, n_init=3).fit(X.astype(np.float32))
    assert plain.k_stability_ is None and plain.n_clusters_ == 5
