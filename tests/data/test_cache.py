"""The ingest cache: append-only rows keyed by picture id, robust to interrupted appends."""

from __future__ import annotations

import numpy as np
import pytest

from iss.data.cache import CacheError, ImageCache


def _rows(n, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 27, 48, 3), dtype=np.uint8),
            rng.integers(0, 256, (n, 54, 96, 3), dtype=np.uint8))


def test_append_and_read_back(tmp_path):
    cache = ImageCache(tmp_path / "c", (48, 27), (96, 54))
    inputs, thumbs = _rows(5)
    ids = [f"p{i}" for i in range(5)]
    assert cache.append(ids, inputs, thumbs) == 5
    assert len(cache) == 5 and cache.ids == ids and "p3" in cache
    np.testing.assert_array_equal(cache.get_inputs(["p3", "p0"]), inputs[[3, 0]])
    np.testing.assert_array_equal(cache.get_thumbs(["p4"]), thumbs[[4]])
    assert cache.inputs.shape == (5, 27, 48, 3) and cache.thumbs.shape == (5, 54, 96, 3)
    reopened = ImageCache(tmp_path / "c")
    assert reopened.input_size == (48, 27) and reopened.ids == ids
    np.testing.assert_array_equal(reopened.get_inputs(ids), inputs)


def test_known_ids_are_skipped(tmp_path):
    cache = ImageCache(tmp_path / "c", (48, 27), (96, 54))
    inputs, thumbs = _rows(3)
    cache.append(["a", "b", "c"], inputs, thumbs)
    new_inputs, new_thumbs = _rows(3, seed=1)
    assert cache.append(["b", "d", "d"], new_inputs, new_thumbs) == 1  # b known, d repeated
    assert cache.ids == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(cache.get_inputs(["b"]), inputs[[1]])  # the first pixels stay
    np.testing.assert_array_equal(cache.get_inputs(["d"]), new_inputs[[1]])
    assert list(cache.index_of(["d", "a"])) == [3, 0]


def test_interrupted_append_is_ignored_then_overwritten(tmp_path):
    root = tmp_path / "c"
    cache = ImageCache(root, (48, 27), (96, 54))
    inputs, thumbs = _rows(4)
    cache.append(["a", "b"], inputs[:2], thumbs[:2])
    # A crash mid-append: the pixels of a third row were written, its id only in part.
    with open(root / "inputs.u8", "ab") as f:
        f.write(inputs[2].tobytes())
    with open(root / "thumbs.u8", "ab") as f:
        f.write(thumbs[2].tobytes()[:1000])
    assert ImageCache(root).ids == ["a", "b"]
    with open(root / "thumbs.u8", "ab") as f:
        f.write(thumbs[2].tobytes()[1000:])
    with open(root / "ids.txt", "a") as f:
        f.write("c-par")
    reopened = ImageCache(root)
    assert reopened.ids == ["a", "b"]  # a cut id is not an id
    assert reopened.append(["c", "d"], inputs[2:], thumbs[2:]) == 2
    again = ImageCache(root)
    assert again.ids == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(again.get_inputs(["a", "b", "c", "d"]), inputs)
    np.testing.assert_array_equal(again.get_thumbs(["c"]), thumbs[[2]])


def test_ids_without_pixels_are_dropped(tmp_path):
    root = tmp_path / "c"
    cache = ImageCache(root, (48, 27), (96, 54))
    inputs, thumbs = _rows(2)
    cache.append(["a", "b"], inputs, thumbs)
    with open(root / "ids.txt", "a") as f:
        f.write("c\n")  # an id whose pixels were never written
    assert ImageCache(root).ids == ["a", "b"]


def test_size_mismatch_and_missing_cache_errors(tmp_path):
    cache = ImageCache(tmp_path / "c", (48, 27), (96, 54))
    cache.append(["a"], *_rows(1))
    with pytest.raises(CacheError, match="delete the folder"):
        ImageCache(tmp_path / "c", (64, 36), (96, 54))
    with pytest.raises(CacheError, match="populate_db"):
        ImageCache(tmp_path / "nothing")
    with pytest.raises(KeyError, match="'zz' is not in the ingest cache"):
        cache.get_inputs(["a", "zz"])
    with pytest.raises(CacheError, match="append expects"):
        cache.append(["b"], np.zeros((1, 10, 10, 3), np.uint8), np.zeros((1, 54, 96, 3), np.uint8))


def test_empty_cache_reads_as_empty_arrays(tmp_path):
    cache = ImageCache(tmp_path / "c", (48, 27), (96, 54))
    assert len(cache) == 0 and cache.inputs.shape == (0, 27, 48, 3) and cache.get_inputs([]).shape == (0, 27, 48, 3)


def test_meta_is_written_whole_and_a_damaged_one_names_the_fix(tmp_path):
    """A run killed while meta.json was written left it empty, and every re-run stopped on a JSON
    traceback; it is now written through a temporary name, and a damaged one is a clear error."""
    cache = ImageCache(tmp_path / "c", (48, 27), (96, 54))
    cache.append(["a"], *_rows(1))
    assert [p.name for p in (tmp_path / "c").iterdir() if p.name.startswith(".")] == []  # no temporary left
    (tmp_path / "c" / "meta.json").write_text("")
    with pytest.raises(CacheError, match=r"meta.json is damaged .*run `make populate_db`"):
        ImageCache(tmp_path / "c")
