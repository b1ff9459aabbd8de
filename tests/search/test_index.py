"""SimilarityIndex: exact neighbours (checked against scikit-learn), calibration, incremental
updates equal to a rebuild, persistence, near-duplicates and outliers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from iss.search.index import SearchIndexError, SimilarityIndex


def clustered_latents(n=600, d=32, seed=0):
    """Latents in a few Gaussian blobs far from the origin (a hard case for float32 distances)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, size=(5, d)) + 40.0
    labels = rng.integers(0, 5, n)
    return (centres[labels] + rng.normal(0, 1, size=(n, d))).astype(np.float32)


def ids_for(n, start=0):
    return [f"p{i:05d}" for i in range(start, start + n)]


@pytest.fixture(scope="module")
def data():
    latents = clustered_latents()
    return ids_for(len(latents)), latents


def test_leave_one_out_neighbours_match_sklearn(data):
    ids, latents = data
    index = SimilarityIndex(n_stored=8, block_size=128).build(ids, latents)
    distances, neighbours = NearestNeighbors(n_neighbors=9).fit(latents).kneighbors(latents)
    # column 0 of sklearn is the picture itself: the index must leave it out
    np.testing.assert_array_equal(index.knn_indices_, neighbours[:, 1:])
    np.testing.assert_allclose(index.knn_distances_, distances[:, 1:], rtol=1e-5, atol=1e-4)
    assert (index.knn_indices_ != np.arange(len(ids))[:, None]).all()


def test_query_matches_sklearn_and_returns_itself_first(data):
    ids, latents = data
    index = SimilarityIndex(block_size=100).build(ids, latents)
    queries = clustered_latents(n=7, seed=1)
    found = index.query(queries, k=12)
    distances, neighbours = NearestNeighbors(n_neighbors=12).fit(latents).kneighbors(queries)
    assert found.distances.shape == found.indices.shape == (7, 12)
    np.testing.assert_array_equal(found.indices, neighbours)
    np.testing.assert_allclose(found.distances, distances, rtol=1e-5, atol=1e-4)
    assert (np.diff(found.distances, axis=1) >= 0).all()
    # an indexed latent finds itself at distance 0 (exact recomputation, no float32 cancellation)
    own = index.query(latents[42], k=3)
    assert own.indices[0, 0] == 42 and own.distances[0, 0] == 0.0


def test_threshold_is_the_percentile_of_leave_one_out_distances_times_margin(data):
    ids, latents = data
    index = SimilarityIndex(threshold_percentile=95, margin=2.0).build(ids, latents)
    nn = NearestNeighbors(n_neighbors=2).fit(latents).kneighbors(latents)[0][:, 1]
    assert index.threshold_ == pytest.approx(np.percentile(nn, 95) * 2.0, rel=1e-5)
    # confidence = share of pictures whose own nearest neighbour is at least that far
    conf = index.confidence([0.0, np.median(nn), nn.max() + 1e-3])
    assert conf[0] == 1.0 and conf[2] == 0.0
    assert conf[1] == pytest.approx(0.5, abs=2 / len(nn))
    assert (np.diff(index.confidence(np.sort(nn))) <= 0).all()


def test_far_query_is_beyond_threshold_and_near_query_within(data):
    ids, latents = data
    index = SimilarityIndex().build(ids, latents)
    far = latents.mean(axis=0) + 100.0
    near = latents[3] + 0.01
    assert index.query(far, k=1).distances[0, 0] > index.threshold_
    assert index.query(near, k=1).distances[0, 0] < index.threshold_
    assert index.confidence(index.query(far, k=1).distances[0])[0] == 0.0


def test_incremental_add_equals_rebuild(data):
    ids, latents = data
    full = SimilarityIndex(n_stored=6, block_size=97).build(ids, latents)
    grown = SimilarityIndex(n_stored=6, block_size=97).build(ids[:400], latents[:400])
    assert grown.add(ids[400:550], latents[400:550]) == 150
    # repeats of indexed ids are skipped, the rest added
    assert grown.add(ids[545:] + ids[:3], np.concatenate([latents[545:], latents[:3]])) == len(ids) - 550
    assert list(grown.ids_) == list(full.ids_)
    np.testing.assert_array_equal(grown.knn_indices_, full.knn_indices_)
    np.testing.assert_allclose(grown.knn_distances_, full.knn_distances_, rtol=1e-5, atol=1e-4)
    assert grown.threshold_ == pytest.approx(full.threshold_, rel=1e-5)


def test_save_load_round_trip(tmp_path, data):
    ids, latents = data
    index = SimilarityIndex(threshold_percentile=98, margin=1.2, n_stored=5).build(ids, latents)
    index.save(tmp_path / "idx", extra_meta={"encoder_sha256": "abc"})
    loaded = SimilarityIndex.load(tmp_path / "idx")
    assert loaded.params() == index.params() and loaded.meta_["encoder_sha256"] == "abc"
    assert list(loaded.ids_) == list(index.ids_)
    np.testing.assert_array_equal(loaded.knn_indices_, index.knn_indices_)
    assert loaded.threshold_ == index.threshold_
    query = clustered_latents(n=3, seed=5)
    np.testing.assert_array_equal(loaded.query(query, 5).indices, index.query(query, 5).indices)
    assert "p00010" in loaded and loaded.row_of("p00010") == 10


def test_neighbours_of_excludes_the_picture(data):
    ids, latents = data
    index = SimilarityIndex(n_stored=5).build(ids, latents)
    stored = index.neighbours_of("p00007", k=5)
    computed = index.neighbours_of("p00007", k=9)
    assert 7 not in stored.indices[0] and 7 not in computed.indices[0]
    np.testing.assert_array_equal(stored.indices[0], computed.indices[0, :5])
    with pytest.raises(KeyError, match="p99999"):
        index.neighbours_of("p99999")


def test_near_duplicate_pairs_and_outliers():
    latents = clustered_latents(n=200, d=16, seed=3)
    latents[50] = latents[10] + 1e-3          # a planted near-copy
    latents[120] = latents[10] + 500.0        # a planted outlier, far from everything
    ids = ids_for(200)
    index = SimilarityIndex().build(ids, latents)
    a, b, d = index.near_duplicate_pairs(threshold=0.01)
    assert list(zip(a, b)) == [(10, 50)] and d[0] < 0.01
    scores = index.outlier_scores(k=5)
    assert scores.shape == (200,) and int(np.argmax(scores)) == 120


def test_bad_input_is_refused_with_a_clear_message(data):
    ids, latents = data
    with pytest.raises(SearchIndexError, match="repeated picture ids"):
        SimilarityIndex().build(["a", "a", "b"], latents[:3])
    with pytest.raises(SearchIndexError, match="2 ids for 3"):
        SimilarityIndex().build(["a", "b"], latents[:3])
    bad = latents[:4].copy()
    bad[2, 1] = np.nan
    with pytest.raises(SearchIndexError, match="row 2"):
        SimilarityIndex().build(ids[:4], bad)
    index = SimilarityIndex().build(ids, latents)
    with pytest.raises(SearchIndexError, match="dimension 7"):
        index.query(np.zeros(7))
    with pytest.raises(SearchIndexError, match="rebuild"):
        index.add(["new"], np.zeros((1, 7)))
    with pytest.raises(SearchIndexError, match="not built"):
        SimilarityIndex().query(np.zeros(3))
    with pytest.raises(SearchIndexError, match="no search index"):
        SimilarityIndex.load("/nonexistent/folder")
