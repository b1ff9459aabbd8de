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


@pytest.mark.parametrize("centers", [1, 8])  # a connected graph (umap's own init), a disconnected one (ours)
def test_a_spectral_layout_that_does_not_converge_starts_from_the_principal_components(monkeypatch, caplog, centers):
    """The eigensolver is bounded (on a graph of many near-copies it ran for over 25 minutes); when it
    gives up, the layout starts from the principal components, and the fit still separates the groups."""
    from iss.clustering import umap_compat

    X, y = make_blobs(400, 8, centers=centers, cluster_std=1.0, center_box=(-60, 60), random_state=2)
    monkeypatch.setattr(umap_compat, "SPECTRAL_MAXITER", 1)  # one restart: never enough
    calls = []

    def recorded(*args):
        calls.append(umap_compat.spectral_layout(*args))  # the real one, bounded at 1
        return calls[-1]

    monkeypatch.setattr("iss.clustering.umap_reducer.spectral_layout", recorded)
    reducer = UMAPReducer(n_neighbors=10, n_epochs=50, random_state=0)
    with caplog.at_level("WARNING"):
        embedding = reducer.fit(X.astype(np.float32)).embedding_
    assert calls and all(layout is None for layout in calls)  # the solver gave up every time...
    assert np.isfinite(embedding).all()  # ...and the fit went on from the principal components
    if centers == 1:
        assert "did not converge" in caplog.text
    else:
        centroids = np.stack([embedding[y == c].mean(axis=0) for c in range(centers)])
        spread = max(np.linalg.norm(embedding[y == c] - centroids[c], axis=1).max() for c in range(centers))
        gaps = np.linalg.norm(centroids[:, None] - centroids[None], axis=-1)[np.triu_indices(centers, 1)]
        assert gaps.min() > spread  # every group apart from the others
