"""The "no good match" checks: thresholds from the collection's own values, the near-copy
exemption, and the texture statistic."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from iss.search.novelty import NoveltyCalibration, texture_score, upper_tail


def png(array) -> io.BytesIO:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buffer, format="PNG")
    buffer.seek(0)
    return buffer


@pytest.fixture
def calibration():
    rng = np.random.default_rng(0)
    return NoveltyCalibration(percentile=99, margin=1.5, reconstruction_errors=rng.uniform(0.001, 0.01, 500),
                              texture_scores=rng.uniform(1.0, 6.0, 400), near_copy_distances=rng.uniform(0, 2.0, 200))


def test_thresholds_are_collection_percentiles_times_margin(calibration):
    assert calibration.reconstruction_threshold == pytest.approx(
        np.percentile(calibration.reconstruction_errors, 99) * 1.5)
    assert calibration.texture_high == pytest.approx(np.percentile(calibration.texture_scores, 99) * 1.5)
    assert calibration.texture_low == pytest.approx(np.percentile(calibration.texture_scores, 1) / 1.5)
    assert calibration.near_copy_distance == pytest.approx(np.percentile(calibration.near_copy_distances, 95))
    summary = calibration.summary()
    assert summary["n_texture"] == 400 and summary["n_reconstruction"] == 500


def test_a_typical_query_is_a_good_match(calibration):
    verdict = calibration.judge(5.0, 10.0, reconstruction_error=0.005, texture=3.0)
    assert verdict.good_match and not verdict.near_copy and verdict.reasons == []
    assert {c.name for c in verdict.checks} == {"distance", "reconstruction", "texture_noise", "texture_smooth"}


@pytest.mark.parametrize("kwargs, failed", [
    (dict(nearest_distance=11.0, reconstruction_error=0.005, texture=3.0), "distance"),
    (dict(nearest_distance=5.0, reconstruction_error=0.5, texture=3.0), "reconstruction"),
    (dict(nearest_distance=5.0, reconstruction_error=0.005, texture=40.0), "texture_noise"),
    (dict(nearest_distance=5.0, reconstruction_error=0.005, texture=0.0), "texture_smooth"),
])
def test_each_check_alone_makes_no_good_match(calibration, kwargs, failed):
    verdict = calibration.judge(distance_threshold=10.0, **kwargs)
    assert not verdict.good_match
    assert [c.name for c in verdict.checks if not c.passed] == [failed]
    assert len(verdict.reasons) == 1 and verdict.reasons[0]  # one sentence naming the value and the limit
    assert any(ch.isdigit() for ch in verdict.reasons[0])


def test_near_copies_are_exempt_from_reconstruction_and_smoothness_but_not_noise(calibration):
    close = calibration.near_copy_distance / 2
    # an edited copy of an unusual picture: reconstructs badly and is smooth, like its original
    verdict = calibration.judge(close, 10.0, reconstruction_error=0.5, texture=0.0)
    assert verdict.good_match and verdict.near_copy
    assert {c.name for c in verdict.checks if c.exempt} == {"reconstruction", "texture_smooth"}
    # pixel noise lands on flat pictures closer than any copy: never exempt
    verdict = calibration.judge(close, 10.0, reconstruction_error=0.005, texture=40.0)
    assert not verdict.good_match and verdict.near_copy


def test_checks_without_data_are_off():
    bare = NoveltyCalibration(near_copy_distances=np.array([1.0]))
    verdict = bare.judge(2.0, 10.0, reconstruction_error=None, texture=None)
    assert verdict.good_match and [c.name for c in verdict.checks] == ["distance"]
    few_textures = NoveltyCalibration(texture_scores=np.ones(5))
    assert not few_textures.texture_enabled and few_textures.texture_high is None


def test_save_load_round_trip(tmp_path, calibration):
    calibration.save(tmp_path)
    loaded = NoveltyCalibration.load(tmp_path)
    assert loaded.summary() == calibration.summary()


def test_texture_score_separates_noise_flat_and_natural_texture():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (720, 1280, 3))
    flat = np.full((720, 1280, 3), 200)
    # smooth "natural" texture: low-frequency noise scaled up, plus faint sensor noise
    clouds = np.asarray(Image.fromarray(rng.integers(40, 220, (18, 32), dtype=np.uint8)).resize((1280, 720), Image.BICUBIC))
    natural = np.clip(clouds[..., None].astype(float) + rng.normal(0, 2, (720, 1280, 1)), 0, 255).repeat(3, axis=2)
    scores = {name: texture_score(png(a)) for name, a in [("noise", noise), ("flat", flat), ("natural", natural)]}
    assert scores["flat"] == 0.0
    assert scores["noise"] > 5 * scores["natural"] > 0
    # the statistic is measured at a fixed working size: a smaller copy of the noise scores alike
    small = texture_score(png(noise[:360, :640]))
    assert small > 5 * scores["natural"]


def test_texture_score_reads_jpeg_and_pil_images():
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (360, 640, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    assert texture_score(buffer) == pytest.approx(texture_score(Image.open(io.BytesIO(buffer.getvalue()))), rel=0.3)


def test_upper_tail_is_an_empirical_p_value():
    reference = np.sort(np.arange(100, dtype=float))
    np.testing.assert_allclose(upper_tail(reference, [-1, 50, 99, 1000]), [1.0, 0.5, 0.01, 0.0])


def test_texture_of_an_upload_decodes_like_ingest_transparent_pixels_are_black(tmp_path):
    """Issue 15, item 4: the texture check reads the pixels the ingest sees (one decoder), not the
    noise hidden under transparent pixels."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(180, 320, 4), dtype=np.uint8)
    pixels[..., 3] = 0  # fully transparent: shown (and ingested) as black
    path = tmp_path / "hidden_noise.png"
    Image.fromarray(pixels, "RGBA").save(path)
    assert texture_score(path) == 0.0
    assert texture_score(Image.fromarray(pixels[..., :3])) > 5  # the hidden noise itself is textured
