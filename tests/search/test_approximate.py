"""SimilarityIndex above ``approximate_above``: HNSW candidates (faiss) re-ranked on exact distances.

Pinned here on 20,000 latents-like points (the threshold lowered so that the test is fast): recall@10
against the exact index, exact distances, the "no good match" calibration and verdicts, persistence
(reuse, rebuild when missing or stale) and incremental adds. Below the threshold the index is the
exact one, bit for bit. Each check runs on the single graph built here (``compute.scheduler: auto``)
and on the sharded index built as Dask partition tasks (:mod:`iss.search.shards`, ``synchronous`` here;
``tests/search/test_approximate_sharded.py`` compares it with a 2-worker LocalCluster).
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("faiss")

from iss.compute import ComputeSettings  # noqa: E402
from iss.config_schema import validate_config  # noqa: E402
from iss.search import approximate  # noqa: E402
from iss.search.approximate import ApproximateIndexError  # noqa: E402
from iss.search.approximate import ShardedNeighbours  # noqa: E402
from iss.search.index import SearchIndexError, SimilarityIndex  # noqa: E402
from iss.search.shards import ShardedBuild  # noqa: E402

N, D, QUERIES = 20_000, 288, 400


def latents_like(n, seed=0, d=D, centres=600, subspace=32):
    """Clustered latents of low intrinsic dimension (as benchmarks/ann.py draws them, smaller)."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, subspace)))[0].astype(np.float32) * 4.0
    middle = rng.standard_normal((centres, subspace)).astype(np.float32)
    which = rng.integers(0, centres, n)
    low = middle[which] + rng.standard_normal((n, subspace)).astype(np.float32) * rng.uniform(0.15, 0.4, centres)[which, None]
    return (low @ basis.T + 0.05 * rng.standard_normal((n, d)) + 10.0).astype(np.float32)


def recall(found, truth):
    return float(np.mean([len(set(f[f >= 0]) & set(t[t >= 0])) / max(1, (t >= 0).sum()) for f, t in zip(found, truth)]))


KINDS = ("plain", "sharded")


def shard_build(kind, folder, shard_size=6000):
    """None (one graph, here) or the sharded build as synchronous Dask partition tasks, shards of ``shard_size``."""
    if kind == "plain":
        return None
    return ShardedBuild(ComputeSettings(scheduler="synchronous"), str(folder / "index_partitions.zarr"), shard_size)


@pytest.fixture(scope="module")
def exact_pair():
    everything = latents_like(N + QUERIES)
    latents, queries = everything[:N], everything[N:]
    ids = [f"p{i:06d}" for i in range(N)]
    return ids, latents, queries, SimilarityIndex().build(ids, latents)


@pytest.fixture(scope="module", params=KINDS)
def pair(request, exact_pair, tmp_path_factory):
    ids, latents, queries, exact = exact_pair
    build = shard_build(request.param, tmp_path_factory.mktemp("shards"))
    approx = SimilarityIndex(approximate_above=5000, shard_build=build).build(ids, latents)
    kind = ShardedNeighbours if request.param == "sharded" else approximate.ApproximateNeighbours
    assert type(approx.approximate_) is kind
    return ids, latents, queries, approx, exact


def test_recall_at_10_against_exact_search(pair):
    _, latents, queries, approx, exact = pair
    assert approx.uses_approximate and approx.approximate_ is not None
    assert not exact.uses_approximate and exact.approximate_ is None
    found, truth = approx.query(queries, k=10), exact.query(queries, k=10)
    assert recall(found.indices, truth.indices) >= 0.95
    # every distance reported is the exact distance of that pair, and they come nearest first
    direct = np.linalg.norm(queries[:, None, :] - latents[found.indices], axis=2)
    np.testing.assert_allclose(found.distances, direct, rtol=1e-5, atol=1e-4)
    assert (np.diff(found.distances, axis=1) >= 0).all()
    # the top hit's distance is the exact nearest distance for nearly every query
    assert np.mean(np.isclose(found.distances[:, 0], truth.distances[:, 0], rtol=1e-6)) >= 0.98


def test_leave_one_out_calibration_holds(pair):
    _, latents, _, approx, exact = pair
    assert not approx.lists_exact_ and exact.lists_exact_
    assert recall(approx.knn_indices_, exact.knn_indices_) >= 0.95
    assert (approx.knn_indices_ != np.arange(N)[:, None]).all()  # never a picture's own neighbour
    rows = np.arange(0, N, 23)
    direct = np.linalg.norm(latents[rows, None, :] - latents[approx.knn_indices_[rows]], axis=2)
    np.testing.assert_allclose(approx.knn_distances_[rows], direct, rtol=1e-5, atol=1e-4)
    # the nearest leave-one-out distance (the calibration) is the exact one for nearly every picture
    assert np.mean(approx.knn_distances_[:, 0] == exact.knn_distances_[:, 0]) >= 0.98
    assert approx.threshold_ == pytest.approx(exact.threshold_, rel=1e-3)


def test_verdicts_match_the_exact_index(pair):
    _, latents, queries, approx, exact = pair
    held_out = queries[:50]
    far = held_out + 6.0  # shifted off the collection's subspace
    # a far query can miss its very nearest picture (the graph is entered from far away) but not the verdict
    for points, rtol in ((held_out, 1e-3), (far, 1e-2)):
        verdicts = []
        for index in (approx, exact):
            nearest = index.query(points, k=1).distances[:, 0]
            verdicts.append((index.confidence(nearest) >= 1 - index.threshold_percentile / 100, nearest))
        np.testing.assert_array_equal(verdicts[0][0], verdicts[1][0])
        np.testing.assert_allclose(verdicts[0][1], verdicts[1][1], rtol=rtol)
    held = approx.confidence(approx.query(held_out, k=1).distances[:, 0]) >= 0.01
    gone = approx.confidence(approx.query(far, k=1).distances[:, 0]) >= 0.01
    assert held.mean() >= 0.9 and not gone.any()  # the verdicts themselves are the expected ones


def test_below_the_threshold_the_index_is_the_exact_one_bit_for_bit():
    latents = latents_like(3000, seed=3)
    ids = [f"q{i}" for i in range(len(latents))]
    below = SimilarityIndex(approximate_above=3001).build(ids, latents)
    exact = SimilarityIndex().build(ids, latents)
    assert below.approximate_ is None and below.lists_exact_
    np.testing.assert_array_equal(below.knn_indices_, exact.knn_indices_)
    np.testing.assert_array_equal(below.knn_distances_, exact.knn_distances_)
    assert below.threshold_ == exact.threshold_
    q = latents_like(20, seed=4)
    for a, b in zip(below.query(q, k=12).__dict__.values(), exact.query(q, k=12).__dict__.values()):
        np.testing.assert_array_equal(a, b)


def test_saved_graph_is_reused_and_rebuilt_when_missing_or_stale(pair, tmp_path, caplog, monkeypatch):
    ids, latents, queries, approx, _ = pair
    folder = approx.save(tmp_path / "idx")
    assert (folder / "approximate.faiss").is_file()
    meta = json.loads((folder / "index.json").read_text())
    assert meta["approximate"]["n"] == N and meta["lists_exact"] is False
    before = approx.query(queries[:100], k=10)

    caplog.set_level(logging.INFO, logger="iss.search.index")
    loaded = SimilarityIndex.load(folder)
    assert not loaded.approximate_rebuilt_ and "rebuilding" not in caplog.text
    assert type(loaded.approximate_) is type(approx.approximate_)  # read back as the kind it was saved as
    np.testing.assert_array_equal(loaded.query(queries[:100], k=10).indices, before.indices)
    np.testing.assert_array_equal(loaded.knn_indices_, approx.knn_indices_)

    (folder / "approximate.faiss").unlink()
    rebuilt = SimilarityIndex.load(folder)
    assert rebuilt.approximate_rebuilt_ and "missing; rebuilding" in caplog.text
    assert recall(rebuilt.query(queries[:100], k=10).indices, before.indices) >= 0.95
    rebuilt.save(folder)
    assert (folder / "approximate.faiss").is_file()

    caplog.clear()
    monkeypatch.setattr(approximate, "APPROXIMATE_VERSION", approximate.APPROXIMATE_VERSION + 1)
    assert SimilarityIndex.load(folder).approximate_rebuilt_ and "rebuilding" in caplog.text

    # the config's threshold overrides the saved one: exact at this size, the graph file goes on save
    exact_now = SimilarityIndex.load(folder, approximate_above=0)
    assert exact_now.approximate_ is None and not exact_now.lists_exact_
    exact_now.save(folder)
    assert not (folder / "approximate.faiss").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_incremental_add_inserts_into_the_graph_and_crossing_the_threshold_builds_it(kind, tmp_path):
    latents = latents_like(8000, seed=5)
    ids = [f"r{i:05d}" for i in range(len(latents))]
    build = shard_build(kind, tmp_path, shard_size=2500)
    grown = SimilarityIndex(approximate_above=5000, shard_build=build).build(ids[:6000], latents[:6000])
    graph = grown.approximate_
    assert grown.add(ids[6000:], latents[6000:]) == 2000
    assert grown.approximate_ is graph and len(graph) == 8000  # inserted in place, not rebuilt
    if kind == "sharded":  # the last shard is filled up, then a new one started: the layout a rebuild gives
        assert [s.ntotal for s in graph.shards_] == [2500, 2500, 2500, 500]
    exact = SimilarityIndex().build(ids, latents)
    assert recall(grown.knn_indices_, exact.knn_indices_) >= 0.95
    assert recall(grown.query(latents[6000:6300] + 0.01, k=10).indices,
                  exact.query(latents[6000:6300] + 0.01, k=10).indices) >= 0.95

    crossing = SimilarityIndex(approximate_above=5000, shard_build=build).build(ids[:4000], latents[:4000])
    assert crossing.approximate_ is None and crossing.lists_exact_
    crossing.add(ids[4000:], latents[4000:])
    assert crossing.approximate_ is not None and len(crossing.approximate_) == 8000
    assert type(crossing.approximate_) is type(graph)
    assert not crossing.lists_exact_
    assert recall(crossing.knn_indices_, exact.knn_indices_) >= 0.95


def test_bad_threshold_and_missing_faiss_say_what_to_do(monkeypatch):
    latents = latents_like(50, seed=6)
    with pytest.raises(SearchIndexError, match="approximate_above=-1: expected a number of pictures"):
        SimilarityIndex(approximate_above=-1).build([str(i) for i in range(50)], latents)
    with pytest.raises(ValueError, match=r"c\.yaml: search\.approximate_above is -5; expected greater than or equal to 0"):
        validate_config({"search": {"approximate_above": -5}}, "c.yaml")
    monkeypatch.setitem(__import__("sys").modules, "faiss", None)
    with pytest.raises(ApproximateIndexError, match="pip install faiss-cpu.*approximate_above: 0"):
        SimilarityIndex(approximate_above=10).build([str(i) for i in range(50)], latents)
