"""The one exact k-NN (iss.neighbours): same answers as scikit-learn on every path, points never
their own neighbours among identical rows, padding when the collection is small."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from iss.neighbours import ExactNeighbours


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(300, 12)) + 30.0).astype(np.float32)


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("m", [1, 5, 80])  # the few-queries path (exact) and scikit-learn's
def test_queries_match_scikit_learn(X, exact, m):
    queries = X[:m] + 0.05
    dist, idx = ExactNeighbours(X, exact=exact, center=X.mean(axis=0)).kneighbors(queries, 7)
    expected_d, expected_i = NearestNeighbors(n_neighbors=7).fit(X).kneighbors(queries)
    np.testing.assert_array_equal(idx, expected_i)
    np.testing.assert_allclose(dist, expected_d, rtol=1e-4, atol=1e-4)
    assert dist.dtype == np.float32 and idx.dtype == np.int64


@pytest.mark.parametrize("exact", [False, True])
def test_identical_rows_are_left_out_by_index_on_every_path(exact):
    rng = np.random.default_rng(1)
    X = np.vstack([np.zeros((30, 8)), rng.normal(size=(200, 8))]).astype(np.float32)
    index = ExactNeighbours(X, exact=exact)
    _, everyone = index.kneighbors(None, 10)
    _, some = index.kneighbors(None, 10, rows=np.arange(0, 230, 7))  # a subset: one more, then drop itself
    _, few = index.kneighbors(None, 10, rows=[0, 5])
    assert not (everyone == np.arange(230)[:, None]).any()
    assert not (some == np.arange(0, 230, 7)[:, None]).any()
    assert not (few == np.array([[0], [5]])).any()
    assert set(everyone[0]) <= set(range(1, 30))


def test_exact_distances_are_zero_for_a_copy_and_padded_when_too_few(X):
    index = ExactNeighbours(X[:4], exact=True, center=X[:4].mean(axis=0))
    dist, idx = index.kneighbors(X[2], 6)
    assert idx[0, 0] == 2 and dist[0, 0] == 0.0
    assert (idx[0, 4:] == -1).all() and np.isinf(dist[0, 4:]).all()
    dist, idx = index.kneighbors(None, 5)
    assert (idx[:, 3:] == -1).all()


def test_other_metrics_and_the_umap_shape(X):
    index = ExactNeighbours(X, "manhattan")
    idx, dist = index.query(X[:3], 4)
    expected_d, expected_i = NearestNeighbors(n_neighbors=4, metric="manhattan").fit(X).kneighbors(X[:3])
    assert idx.dtype == np.int32 and dist.dtype == np.float32
    np.testing.assert_array_equal(idx, expected_i)
    graph_i, graph_d, same = index.neighbour_graph(5)
    assert same is index and (graph_i[:, 0] == np.arange(len(X))).all() and (graph_d[:, 0] == 0).all()
    assert index._angular_trees is False


def test_clusterings_pickled_with_the_former_index_still_transform(X):
    """A fitted UMAP saved before the merge holds clustering's former ExactKNNIndex: {metric, nn}."""
    old = ExactNeighbours.__new__(ExactNeighbours)
    old.__dict__.update({"metric": "euclidean", "nn": NearestNeighbors(algorithm="brute").fit(X)})
    loaded = pickle.loads(pickle.dumps(old))
    idx, _ = loaded.query(X[:2], 3)
    assert idx[:, 0].tolist() == [0, 1]
