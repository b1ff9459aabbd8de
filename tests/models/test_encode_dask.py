"""Encode as Dask tasks over partitions: the same latents file as the in-process path.

``synchronous`` runs the partition tasks in this process (the store, the chunking, the assembly);
``local`` runs them on a LocalCluster of two worker processes, each loading the encoder once.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from iss.compute import ComputeError, process_cached
from iss.data.cache import ImageCache
from iss.models.encode import encode_collection, load_latents
from tests.conftest import real_frame_paths
from tests.models.conftest import fill_cache, write_splits

pytest.importorskip("distributed", reason="the Dask tests need the dask extra: pip install 'iss[dask]'")
pytest.importorskip("zarr", reason="the Dask tests need the dask extra: pip install 'iss[dask]'")

TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}  # another batch size may pick other oneDNN kernels


def _in_process(cfg, engine):
    """The latents of today's path (``auto`` on a local collection), then removed for the next run."""
    path = encode_collection(cfg.with_overrides({"compute": {"scheduler": "auto"}}), engine, "simple_conv", "enc",
                             only_new=False)
    ids, latents = load_latents(cfg, "simple_conv", "enc")
    path.unlink()
    return ids, latents


def _on(cfg, scheduler: str, partition_size: int = 10):
    return cfg.with_overrides({"compute": {"scheduler": scheduler, "partition_size": partition_size,
                                           "n_workers": 2}})


def test_synchronous_partitions_equal_the_in_process_encode_and_merge_new_pictures(trained):
    cfg, engine, cache = trained
    ids, latents = _in_process(cfg, engine)
    on = _on(cfg, "synchronous")  # 64 pictures in partitions of 10: the last one is short
    path = encode_collection(on, engine, "simple_conv", "enc", only_new=False)
    dask_ids, dask_latents = load_latents(cfg, "simple_conv", "enc")
    np.testing.assert_array_equal(dask_ids, ids)
    np.testing.assert_allclose(dask_latents, latents, **TOLERANCE)
    assert not (cfg.path("interim") / "encode_partitions.zarr").exists()  # the run's store is removed

    fill_cache(cfg, 8, start=1000, seed=5)  # new pictures: only they go through the tasks, merged in cache order
    encode_collection(on, engine, "simple_conv", "enc", only_new=True)
    merged_ids, merged = load_latents(cfg, "simple_conv", "enc")
    assert list(merged_ids) == ImageCache(cfg.path("cache")).ids and len(merged_ids) == 72
    np.testing.assert_array_equal(merged[:64], dask_latents)
    all_ids, everything = _in_process(cfg, engine)
    np.testing.assert_array_equal(all_ids, merged_ids)
    np.testing.assert_allclose(merged, everything, **TOLERANCE)
    assert path.name == "latents.npz"


def test_local_cluster_encode_equals_the_in_process_encode(trained):
    cfg, engine, _ = trained
    ids, latents = _in_process(cfg, engine)
    encode_collection(_on(cfg, "local"), engine, "simple_conv", "enc", only_new=False)
    dask_ids, dask_latents = load_latents(cfg, "simple_conv", "enc")
    np.testing.assert_array_equal(dask_ids, ids)
    np.testing.assert_allclose(dask_latents, latents, **TOLERANCE)


def test_workers_that_cannot_read_the_cache_stop_the_step_with_one_clear_error(trained, monkeypatch, tmp_path):
    cfg, engine, _ = trained
    # the cache as a worker without the shared folder sees it: not there
    monkeypatch.setattr(ImageCache, "pictures_file", lambda self, shape: tmp_path / "elsewhere" / "inputs.u8")
    with pytest.raises(ComputeError, match=r"cannot reach a path: .*elsewhere/inputs\.u8.*same names"):
        encode_collection(_on(cfg, "synchronous"), engine, "simple_conv", "enc", only_new=False)


def test_process_cache_keeps_one_value_per_slot_and_reloads_on_a_new_key():
    loads = []
    load = lambda name: lambda: loads.append(name) or name  # noqa: E731
    assert process_cached("test-slot", ("a", 1), load("a1")) == "a1"
    assert process_cached("test-slot", ("a", 1), load("again")) == "a1"  # cached: not loaded again
    assert process_cached("test-slot", ("a", 2), load("a2")) == "a2"  # the file changed (mtime)
    assert loads == ["a1", "a2"]


REAL_FRAMES = real_frame_paths()


@pytest.mark.skipif(not REAL_FRAMES, reason="needs the real ISS frames (shared/real/iss_frames)")
def test_real_frames_encoded_on_two_local_workers_equal_the_in_process_latents(cfg, tmp_path):
    from iss.data.ingest import populate_db
    from iss.data.sync import sync_collections
    from iss.db.engine import get_engine
    from iss.models.training import train_model

    source = tmp_path / "frames"
    source.mkdir()
    for frame in REAL_FRAMES:
        shutil.copy(frame, source / frame.name)
    cfg = cfg.with_overrides({"sync": {"source": str(source), "collections_subdir": "", "history_file": "",
                                       "labels_file": ""},
                              "ingest": {"filename_pattern": None},
                              "training": {"epochs": 1, "batch_size": 8, "checkpoint_every": 1, "image_every": 0}})
    sync_collections(cfg, progress=False)
    engine = get_engine(cfg.database_url)
    try:
        summary = populate_db(cfg, engine, progress=False)
        assert summary.accepted == len(REAL_FRAMES)
        cache = ImageCache(cfg.path("cache"))
        write_splits(engine, cache.ids, len(REAL_FRAMES) - 6)
        train_model(cfg, engine, "simple_conv", "enc", epochs=1, verbose=0)
        ids, latents = _in_process(cfg, engine)
        encode_collection(_on(cfg, "local", partition_size=8), engine, "simple_conv", "enc", only_new=False)
        dask_ids, dask_latents = load_latents(cfg, "simple_conv", "enc")
    finally:
        engine.dispose()
    assert list(ids) == cache.ids and len(ids) == len(REAL_FRAMES)
    np.testing.assert_array_equal(dask_ids, ids)
    np.testing.assert_allclose(dask_latents, latents, **TOLERANCE)
