"""The fast UMAP set-up: exact neighbours shaped like pynndescent's index, reproducible initialisation
of disconnected neighbour graphs (the cache folder and umap's internals: test_umap_compat.py)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.neighbors import NearestNeighbors

from iss.clustering.umap_reducer import ExactKNNIndex, UMAPReducer


def test_exact_index_matches_scikit_learn_and_lists_each_point_first():
    X = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    index = ExactKNNIndex(X, "euclidean")
    idx, dists, same = index.neighbour_graph(5)
    assert same is index and idx.dtype == np.int32 and dists.dtype == np.float32
    np.testing.assert_array_equal(idx[:, 0], np.arange(200))
    expected_d, expected_i = NearestNeighbors(n_neighbors=5).fit(X).kneighbors(X[:10] + 0.01)
    got_i, got_d = index.query(X[:10] + 0.01, 5)
    np.testing.assert_array_equal(got_i, expected_i)
    np.testing.assert_allclose(got_d, expected_d, rtol=1e-4)


def test_identical_rows_never_list_themselves_among_their_neighbours():
    """30 identical rows among 230: each point's "others" and the graph's tail exclude the point."""
    rng = np.random.default_rng(0)
    X = np.vstack([np.zeros((30, 8)), rng.normal(size=(200, 8))]).astype(np.float32)
    index = ExactKNNIndex(X, "euclidean")
    others = index.others(10)
    assert others.shape == (230, 10)
    assert not (others == np.arange(230)[:, None]).any()
    assert set(others[0]) <= set(range(1, 30))  # a copy's nearest are the other copies
    idx, dists, _ = index.neighbour_graph(10)
    np.testing.assert_array_equal(idx[:, 0], np.arange(230))
    assert not (idx[:, 1:] == np.arange(230)[:, None]).any() and (dists[:, 0] == 0).all()


def test_disconnected_graphs_embed_the_same_twice():
    """Far apart groups make umap's own spectral init vary between calls; ours does not."""
    X, _ = make_blobs(300, 10, centers=6, cluster_std=0.5, center_box=(-50, 50), random_state=1)
    first = UMAPReducer(n_neighbors=8, n_epochs=50).fit(X)
    second = UMAPReducer(n_neighbors=8, n_epochs=50).fit(X)
    assert first.n_graph_components_ > 1
    np.testing.assert_array_equal(first.embedding_, second.embedding_)


def test_exact_neighbours_refuse_a_metric_they_cannot_compute():
    with pytest.raises(ValueError, match="knn='exact' with metric='hellinger'"):
        UMAPReducer(knn="exact", metric="hellinger").fit(np.ones((30, 4)))
