"""The demo looks like the real thing: real ISS frames lie among generated frames, photographs do not.

The statistics (colour and gradient histograms at two scales, :mod:`iss.data.fidelity`) and the
rule (a real frame is "like the demo" when its nearest generated frame is no farther than the
demo's own 99th-percentile nearest-neighbour distance) are explained in the module.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from iss.config import real_frames_dir
from iss.data.demo import generate_collection
from iss.data.fidelity import (
    LAYOUT_WEIGHT,
    SIZE,
    frame_statistics,
    likeness,
    nearest_distances,
    statistics_of_files,
)

REAL_FRAMES = real_frames_dir()
N_DEMO = 400

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_statistics(tmp_path_factory) -> np.ndarray:
    """Statistics of ``N_DEMO`` generated 1280x720 JPEG frames (as ``make demo`` writes them)."""
    summary = generate_collection(tmp_path_factory.mktemp("demo"), n=N_DEMO, seed=11, progress=False)
    return statistics_of_files(sorted(summary.collection_dir.glob("*.jpg")))


def test_statistics_are_square_rooted_histograms():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    stats = frame_statistics(frame)
    assert stats.shape == (96,)
    for block in (slice(0, 64), slice(64, 74), slice(74, 84)):  # each histogram is a probability vector
        assert (stats[block] ** 2).sum() == pytest.approx(1.0)
    flat = np.full_like(frame, 90)
    assert frame_statistics(flat)[64] == pytest.approx(1.0)  # no gradient anywhere: all in the first bin
    dark_over_bright = np.zeros_like(frame)
    dark_over_bright[45:] = 200
    layout = frame_statistics(dark_over_bright)[84:] / LAYOUT_WEIGHT
    assert layout[:4].max() == 0 and layout[-4:].min() == pytest.approx(200 / 255)
    assert nearest_distances(stats[None], np.stack([stats, frame_statistics(flat)]))[0] == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValueError, match="expected a uint8 frame"):
        frame_statistics(frame[:10])


@pytest.mark.skipif(not REAL_FRAMES.is_dir(), reason=f"real frames not found at {REAL_FRAMES} (set ISS_REAL_FRAMES)")
def test_real_frames_lie_within_the_demo(demo_statistics):
    real = statistics_of_files(sorted(REAL_FRAMES.glob("*.jpg")))
    assert len(real) == 30
    result = likeness(demo_statistics, real, percentile=99)
    assert result["share"] >= 0.8, (result["threshold"], np.round(result["distances"], 3))


def test_photographs_are_not_like_the_demo(demo_statistics):
    """The statistics can tell: unrelated real photographs stay outside the demo's neighbourhood."""
    from sklearn.datasets import load_sample_image

    files = []
    for name in ("china.jpg", "flower.jpg"):
        buffer = io.BytesIO()
        Image.fromarray(load_sample_image(name)).save(buffer, format="JPEG", quality=90)
        buffer.seek(0)
        files.append(buffer)
    result = likeness(demo_statistics, statistics_of_files(files), percentile=99)
    assert not result["accepted"].any(), (result["threshold"], result["distances"])
