"""The saved search index: built once, loaded as is, updated incrementally when new pictures
are encoded (same result as a rebuild), rebuilt when the encoder or the latents change."""

from __future__ import annotations

import numpy as np
import pytest

from iss.config import load_config
from iss.search.build import index_dir, sync_index
from iss.search.index import SimilarityIndex

pytestmark = pytest.mark.slow  # uses the shared trained setup


def own_config(search_env, root, **search):
    """A config sharing the session's database, model, cache and pictures, with its own latents and index folders."""
    env_cfg = search_env.cfg
    return load_config(mode="demo", root=root, overrides={
        "database": {"url": env_cfg.database_url},
        "training": env_cfg.section("training"),
        "paths": {"cache": str(env_cfg.path("cache")), "models": str(env_cfg.path("models")),
                  "collections": str(env_cfg.path("collections"))},
        "search": {"texture_sample": 250, "near_copy_sample": 40, **search}})


@pytest.fixture
def own_latents(search_env, tmp_path):
    """:func:`own_config`, and a writer of its latents file (the first ``n`` of the session's)."""
    env_cfg = search_env.cfg
    cfg = own_config(search_env, tmp_path)
    ids, latents = search_env.service.index.ids_, search_env.service.index.latents_
    source = env_cfg.path("latents") / "simple_conv" / "searchtest" / "latents.npz"
    with np.load(source) as data:
        sha = str(data["encoder_sha256"])
    target = cfg.path("latents") / "simple_conv" / "searchtest" / "latents.npz"
    target.parent.mkdir(parents=True)

    def write(n, encoder_sha=sha, change_row=None):
        values = latents[:n].copy()
        if change_row is not None:
            values[change_row] += 1.0
        with open(target, "wb") as f:
            np.savez(f, ids=ids[:n], latents=values, encoder_sha256=np.array(encoder_sha))

    return cfg, write


def test_build_then_load_then_add_then_rebuild(search_env, own_latents):
    cfg, write_latents = own_latents
    model = search_env.service.model
    cache = search_env.service.cache

    write_latents(200)
    index, calibration, summary = sync_index(cfg, model, cache)
    assert summary.action == "built" and len(index) == 200 and summary.folder == index_dir(cfg, "simple_conv",
                                                                                          "searchtest")
    assert calibration.n_sampled == 200 and calibration.texture_enabled and calibration.appearance_enabled

    # nothing changed: loaded from disk, not rebuilt
    again, _, summary = sync_index(cfg, model, cache)
    assert summary.action == "loaded" and len(again) == 200
    np.testing.assert_array_equal(again.knn_indices_, index.knn_indices_)

    # 100 pictures encoded since: added incrementally, identical to a fresh build
    write_latents(300)
    grown, grown_cal, summary = sync_index(cfg, model, cache)
    assert summary.action == "added" and summary.n_added == 100 and len(grown) == 300
    assert grown_cal.n_sampled == 250 and len(grown_cal.appearance) == 250  # sample grows up to texture_sample
    fresh = SimilarityIndex(**{k: grown.params()[k] for k in ("threshold_percentile", "margin", "n_stored")}
                            ).build(grown.ids_, grown.latents_)
    np.testing.assert_array_equal(grown.knn_indices_, fresh.knn_indices_)
    assert grown.threshold_ == pytest.approx(fresh.threshold_, rel=1e-5)
    # and the update was saved
    assert sync_index(cfg, model, cache)[2].action == "loaded"

    # a latent of an indexed picture changed (re-encoded): rebuild
    write_latents(300, change_row=5)
    assert sync_index(cfg, model, cache)[2].action == "built"
    # another encoder made the latents: rebuild
    write_latents(300, encoder_sha="another")
    rebuilt = sync_index(cfg, model, cache)[2]
    assert rebuilt.action == "built" and "another encoder" in rebuilt.reason
    # pictures removed from the latents: rebuild, never a stale index
    write_latents(250, encoder_sha="another")
    shrunk, _, summary = sync_index(cfg, model, cache)
    assert summary.action == "built" and len(shrunk) == 250
    # settings changed: rebuild with the new rule (margin widens the texture guards only)
    wider = cfg.with_overrides({"search": {"margin": 2.0}})
    index, calibration, summary = sync_index(wider, model, cache)
    assert summary.action == "built" and calibration.margin == 2.0 and index.margin == 1.0


def test_approximate_above_follows_the_setting_without_a_needless_rebuild(search_env, own_latents, tmp_path):
    pytest.importorskip("faiss")
    _, write_latents = own_latents
    model, cache = search_env.service.model, search_env.service.cache
    write_latents(300)
    small = own_config(search_env, tmp_path, approximate_above=100)
    index, _, summary = sync_index(small, model, cache)
    assert summary.action == "built" and index.approximate_ is not None and not index.lists_exact_
    graph = index_dir(small, "simple_conv", "searchtest") / "approximate.faiss"
    assert graph.is_file()
    again, _, summary = sync_index(small, model, cache)  # the saved graph is read, not rebuilt
    assert summary.action == "loaded" and not again.approximate_rebuilt_
    np.testing.assert_array_equal(again.knn_indices_, index.knn_indices_)

    # above the collection now: its approximate lists are replaced by an exact build, the graph file goes
    exact_cfg = own_config(search_env, tmp_path, approximate_above=10_000)
    exact, _, summary = sync_index(exact_cfg, model, cache)
    assert summary.action == "built" and "approximate_above" in summary.reason
    assert exact.approximate_ is None and exact.lists_exact_ and not graph.exists()
    fresh = SimilarityIndex(n_stored=exact.n_stored).build(exact.ids_, exact.latents_)
    np.testing.assert_array_equal(exact.knn_indices_, fresh.knn_indices_)

    # under it again: exact lists are kept (better than approximate ones), only the graph is built and saved
    relaxed, _, summary = sync_index(small, model, cache)
    assert summary.action == "loaded" and relaxed.approximate_rebuilt_ and relaxed.lists_exact_
    assert graph.is_file() and not sync_index(small, model, cache)[0].approximate_rebuilt_


def test_on_a_dask_scheduler_the_graph_is_built_in_shards_and_read_back_as_such(search_env, own_latents, tmp_path):
    pytest.importorskip("faiss")
    pytest.importorskip("zarr")
    from iss.search.approximate import ApproximateNeighbours, ShardedNeighbours

    _, write_latents = own_latents
    model, cache = search_env.service.model, search_env.service.cache
    write_latents(250)
    cfg = own_config(search_env, tmp_path, approximate_above=100, shard_size=128).with_overrides(
        {"compute": {"scheduler": "synchronous"}})
    index, _, summary = sync_index(cfg, model, cache)
    assert summary.action == "built" and type(index.approximate_) is ShardedNeighbours
    assert [s.ntotal for s in index.approximate_.shards_] == [128, 122]
    # read back as shards, also where the scheduler is auto now (nothing is rebuilt)
    auto = own_config(search_env, tmp_path, approximate_above=100, shard_size=128)
    again, _, summary = sync_index(auto, model, cache)
    assert summary.action == "loaded" and type(again.approximate_) is ShardedNeighbours
    np.testing.assert_array_equal(again.knn_indices_, index.knn_indices_)
    # new pictures fill the last shard, then start a new one
    write_latents(300)
    grown, _, summary = sync_index(auto, model, cache)
    assert summary.action == "added" and [s.ntotal for s in grown.approximate_.shards_] == [128, 128, 44]
    # a forced rebuild with auto: one graph, here
    assert type(sync_index(auto, model, cache, force=True)[0].approximate_) is ApproximateNeighbours


def test_missing_latents_say_which_step_to_run(search_env, tmp_path):
    from iss.models.store import EncodeError

    cfg = load_config(mode="demo", root=tmp_path, overrides={"training": search_env.cfg.section("training")})
    with pytest.raises(EncodeError, match="make encode"):
        sync_index(cfg, search_env.service.model, search_env.service.cache)
