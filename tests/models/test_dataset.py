"""The tf.data input pipeline over the ingest cache."""

from __future__ import annotations

import numpy as np
import pytest

from iss.models.dataset import load_split_datasets, make_dataset, split_ids
from tests.models.conftest import N_PICTURES, N_TRAIN, structured_pictures, write_splits


def _collect(ds):
    pixels, targets = zip(*[(p.numpy(), t.numpy()) for p, t in ds])
    return np.concatenate(pixels), np.concatenate(targets)


def test_batches_pair_uint8_pixels_with_scaled_targets():
    images = structured_pictures(10)
    pixels, targets = _collect(make_dataset(images, batch_size=4))
    assert pixels.dtype == np.uint8 and targets.dtype == np.float32
    np.testing.assert_array_equal(pixels, images)
    np.testing.assert_allclose(targets, images / 255.0, rtol=1e-6)
    assert [len(p) for p, _ in make_dataset(images, batch_size=4)] == [4, 4, 2]


def test_shuffle_is_seeded_and_reshuffles_each_epoch():
    images = structured_pictures(32)
    ds = make_dataset(images, batch_size=32, shuffle=True, seed=3)
    first, second = [p.numpy() for p, _ in ds][0], [p.numpy() for p, _ in ds][0]
    again = [p.numpy() for p, _ in make_dataset(images, batch_size=32, shuffle=True, seed=3)][0]
    np.testing.assert_array_equal(first, again)           # same seed, same order
    assert not np.array_equal(first, second)              # a new order every epoch
    assert sorted(map(bytes, first)) == sorted(map(bytes, images))  # a permutation of the pictures


def test_streaming_from_memmap_gives_the_same_pictures(tmp_path):
    images = structured_pictures(20)
    path = tmp_path / "inputs.u8"
    images.tofile(path)
    memmap = np.memmap(path, dtype=np.uint8, mode="r", shape=images.shape)
    rows = np.array([3, 1, 7, 19, 0])
    in_memory, _ = _collect(make_dataset(memmap, batch_size=2, rows=rows))
    streamed, _ = _collect(make_dataset(memmap, batch_size=2, rows=rows, max_in_memory_bytes=0))
    np.testing.assert_array_equal(in_memory, images[np.sort(rows)])
    np.testing.assert_array_equal(streamed, in_memory)


def test_rejects_float_pixels():
    with pytest.raises(TypeError, match="uint8"):
        make_dataset(np.zeros((2, 27, 48, 3), dtype=np.float32))


def test_split_datasets_follow_the_splits_table(collection):
    cfg, engine, cache = collection
    train_ds, valid_ds, counts, valid_rows = load_split_datasets(cache, engine, batch_size=16)
    assert counts == {"train": N_TRAIN, "valid": N_PICTURES - N_TRAIN}
    train_pixels, _ = _collect(train_ds)
    valid_pixels, _ = _collect(valid_ds)
    expected_train = cache.get_inputs(split_ids(engine, "train"))
    assert sorted(map(bytes, train_pixels)) == sorted(map(bytes, expected_train))
    np.testing.assert_array_equal(valid_pixels, cache.inputs[np.sort(valid_rows)])


def test_missing_pictures_and_empty_splits_name_the_fix(collection):
    cfg, engine, cache = collection
    write_splits(engine, [*cache.ids[:4], "20990101-000000"], n_train=5)
    with pytest.raises(LookupError, match="not in the ingest cache.*populate_db"):
        load_split_datasets(cache, engine, batch_size=4)
    write_splits(engine, cache.ids[:4], n_train=0)
    with pytest.raises(LookupError, match="train split is empty.*make sampling"):
        load_split_datasets(cache, engine, batch_size=4)
