"""Dendrogram of a linkage matrix, cut at the run's number of clusters."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy.cluster.hierarchy import fcluster, linkage

from iss.visualization.dendrogram import cut_height, load_run_linkage, plot_dendrogram


@pytest.fixture
def blobs_linkage():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]])
    points = np.concatenate([c + rng.normal(0, 0.5, (12, 2)) for c in centres])
    return linkage(points, method="ward")


@pytest.mark.parametrize("n_clusters", [2, 3, 4, 7])
def test_cut_height_gives_the_asked_number_of_clusters(blobs_linkage, n_clusters):
    labels = fcluster(blobs_linkage, t=cut_height(blobs_linkage, n_clusters), criterion="distance")
    assert len(set(labels)) == n_clusters


def test_png_written(blobs_linkage, tmp_path):
    path = plot_dendrogram(blobs_linkage, tmp_path / "d.png", n_clusters=4,
                           leaf_labels=[f"k{i}" for i in range(48)], title="test")
    with Image.open(path) as image:
        assert image.size[0] >= 900 and image.size[1] >= 500
        assert np.asarray(image.convert("L")).std() > 5


def test_large_trees_are_truncated(tmp_path):
    tree = linkage(np.random.default_rng(1).normal(size=(400, 3)), method="ward")
    path = plot_dendrogram(tree, tmp_path / "big.png", n_clusters=6, max_leaves=40)
    with Image.open(path) as image:
        assert image.size[0] < 2000


def test_bad_linkage_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"shape \(m - 1, 4\)"):
        plot_dendrogram(np.zeros((3, 3)), tmp_path / "x.png")


def test_run_without_fitted_model_has_no_linkage(tmp_path):
    assert load_run_linkage({"run_id": 1, "clustering_type": "classical", "path": str(tmp_path / "nope")}) is None
    assert load_run_linkage({"run_id": 1, "clustering_type": "classical", "path": ""}) is None
