"""The appearance descriptor and its leave-one-out calibration, on real photographs and
generated frames: what makes "no good match" hold for pictures unlike the collection."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from iss.config import real_frames_dir
from iss.search.appearance import BLOCKS, DIM, SLICES, AppearanceModel, descriptor, working_rgb
from tests.search.conftest import new_frames
from tests.search.photographs import real_photographs

REAL_FRAMES = real_frames_dir()


def describe(data: bytes) -> np.ndarray:
    return descriptor(working_rgb(io.BytesIO(data)))


@pytest.fixture(scope="module")
def frames():
    """200 generated frames (the collection) and 40 more of the same generator (new frames)."""
    data = list(new_frames(0, 240, size=(640, 360)).values())
    d = np.stack([describe(x) for x in data])
    return d[:200], d[200:], data


def test_descriptor_blocks_are_square_rooted_distributions(frames):
    collection = frames[0]
    assert collection.shape == (200, DIM) and collection.dtype == np.float32
    for (name, n), block in zip(BLOCKS, SLICES):
        np.testing.assert_allclose((collection[:, block] ** 2).sum(axis=1), 1.0, rtol=1e-4, err_msg=name)


def test_soft_bins_keep_a_small_colour_shift_small(frames):
    """Brightening by 3 % moves the histograms a little, not across bin edges all at once."""
    image = Image.open(io.BytesIO(frames[2][0])).convert("RGB")
    shifted = io.BytesIO()
    ImageEnhance.Brightness(image).enhance(1.03).save(shifted, format="PNG")
    original = io.BytesIO()
    image.save(original, format="PNG")
    a, b = describe(original.getvalue()), describe(shifted.getvalue())
    distance = np.linalg.norm(a - b)
    spread = np.median(np.linalg.norm(frames[0][1:] - frames[0][:-1], axis=1))
    assert distance < 0.25 * spread


def test_leave_one_out_p_values_accept_new_frames_and_reject_real_photographs(frames):
    collection, new, _ = frames
    model = AppearanceModel(collection)
    assert len(model.loo_scores_) == 200 and np.all(np.diff(model.loo_scores_) >= 0)
    # a collection picture's own leave-one-out p-value is uniform: about 1 % fall under 0.01
    assert np.mean(model.p_value(model.loo_scores_) < 0.01) <= 0.02
    assert np.mean(model.p_value(model.score(new)) >= 0.01) >= 0.9
    photos = {name: describe(data) for name, data in real_photographs().items()}
    p = dict(zip(photos, model.p_value(model.score(np.stack(list(photos.values()))))))
    assert p["china"] < 0.01 and p["flower"] < 0.01, p
    assert np.mean([v < 0.01 for v in p.values()]) >= 0.95, p


@pytest.mark.skipif(not REAL_FRAMES.is_dir(), reason=f"real frames not found at {REAL_FRAMES} (set ISS_REAL_FRAMES)")
def test_real_iss_frames_mostly_look_like_the_demo_collection(frames):
    """30 real HDEV frames against 200 generated ones: a picture must fit in colour *and* texture,
    which real frames do (27 of 30 measured; a geometric mean over all six blocks passed 19)."""
    model = AppearanceModel(frames[0])
    real = np.stack([descriptor(working_rgb(path)) for path in sorted(REAL_FRAMES.glob("*.jpg"))])
    assert len(real) == 30
    assert np.mean(model.p_value(model.score(real)) >= 0.01) >= 0.8


def test_state_round_trip(frames):
    model = AppearanceModel(frames[0])
    restored = AppearanceModel.from_state(model.state())
    np.testing.assert_array_equal(restored.score(frames[1]), model.score(frames[1]))


def test_too_few_pictures_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 2"):
        AppearanceModel(np.zeros((1, DIM), np.float32))
