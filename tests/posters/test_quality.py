"""Quality scores used by "best of cluster": sharpness and exposure."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from iss.posters import quality

from .helpers import make_picture


def as_batch(*images: Image.Image) -> np.ndarray:
    return np.stack([np.asarray(im.convert("RGB").resize((96, 54), Image.Resampling.BILINEAR)) for im in images])


def test_blur_lowers_sharpness():
    sharp = make_picture(0)
    batch = as_batch(sharp, sharp.filter(ImageFilter.GaussianBlur(2)), sharp.filter(ImageFilter.GaussianBlur(6)))
    scores = quality.sharpness(batch)
    assert scores.shape == (3,) and scores.dtype == np.float32
    assert scores[0] > scores[1] > scores[2]


def test_exposure_prefers_mid_grey_without_clipping():
    h, w = 54, 96
    mid = np.full((h, w, 3), 128, np.uint8)
    dark = np.full((h, w, 3), 20, np.uint8)
    black = np.zeros((h, w, 3), np.uint8)
    half_blown = mid.copy()
    half_blown[:, : w // 2] = 255
    scores = quality.exposure(np.stack([mid, dark, black, half_blown]))
    assert scores[0] > 0.99
    assert scores[0] > scores[1] > scores[2]
    assert scores[2] == 0.0
    assert scores[3] < 0.5  # half the pixels clipped


def test_quality_ranks_a_sharp_well_exposed_picture_first():
    good = make_picture(1)
    blurred = make_picture(3)  # blurred by the fixture
    dark = make_picture(4)  # darkened by the fixture
    scores = quality.quality(as_batch(blurred, dark, good))
    assert int(np.argmax(scores)) == 2
    assert np.all((scores >= 0) & (scores <= 1))


def test_small_decode(tmp_path):
    path = tmp_path / "big.jpg"
    make_picture(0).resize((1280, 720)).save(path, quality=90)
    small = quality.small_decode(path, (96, 54))
    assert small.shape == (54, 96, 3) and small.dtype == np.uint8
