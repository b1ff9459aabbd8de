"""The README's recipe "add a clustering method" (n2d's final step): one module (``birch_step.py``) plus
one line in ``FINAL_STEPS``, then n2d, its checks and the config schema know the new method."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import Birch
from sklearn.metrics import adjusted_rand_score

from iss.clustering import make_clustering
from iss.clustering.base import ClusteringBase
from iss.clustering.final_steps import FINAL_STEPS
from iss.config import ConfigError

from .conftest import N_BLOBS


@pytest.fixture
def birch(monkeypatch):
    # the one registry line, as the README shows it (monkeypatch removes it after the test)
    monkeypatch.setitem(FINAL_STEPS, "birch", "tests.clustering.birch_step:BirchStep")


def test_a_registered_final_step_clusters_saves_and_predicts(birch, blobs, tmp_path):
    X, y, X_new, y_new = blobs
    model = make_clustering("n2d", n_clusters=N_BLOBS, method="birch", umap={"n_neighbors": 10, "n_epochs": 100})
    model.fit(X)
    assert isinstance(model.clusterer_, Birch)
    assert model.n_clusters_ == N_BLOBS and adjusted_rand_score(y, model.labels_) >= 0.95
    assert (np.diff(np.bincount(model.labels_)) <= 0).all()  # numbered by decreasing size, like every method
    loaded = ClusteringBase.load(model.save(tmp_path / "birch"))
    np.testing.assert_array_equal(loaded.predict(X_new), model.predict(X_new))
    assert adjusted_rand_score(y_new, model.predict(X_new)) >= 0.95


def test_the_config_and_the_estimator_list_a_registered_method(birch, cfg):
    assert cfg.with_overrides({"clustering": {"n2d": {"method": "birch"}}}).get("clustering.n2d.method") == "birch"
    with pytest.raises(ConfigError, match="clustering.n2d.method is 'spectral'; expected 'kmeans', 'gmm', 'scan' or "
                                          "'birch'"):
        cfg.with_overrides({"clustering": {"n2d": {"method": "spectral"}}})
    with pytest.raises(ValueError, match="method='spectral': expected one of 'kmeans', 'gmm', 'scan', 'birch'"):
        make_clustering("n2d", method="spectral").fit(np.random.default_rng(0).normal(size=(50, 4)))


def test_without_its_line_the_method_is_refused(cfg):
    with pytest.raises(ConfigError, match="clustering.n2d.method is 'birch'; expected 'kmeans', 'gmm' or 'scan'"):
        cfg.with_overrides({"clustering": {"n2d": {"method": "birch"}}})
