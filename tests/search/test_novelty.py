"""The "no good match" checks: thresholds from the collection's own values, the near-copy
exemption, confidences that agree with the verdict, and the texture and correlation statistics."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from iss.search.appearance import DIM, AppearanceModel
from iss.search.novelty import NOVELTY_VERSION, NoveltyCalibration, confidence_means, texture_score, thumb_correlation


def png(array) -> io.BytesIO:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buffer, format="PNG")
    buffer.seek(0)
    return buffer


@pytest.fixture
def calibration():
    rng = np.random.default_rng(0)
    descriptors = np.abs(rng.normal(0.3, 0.05, (200, DIM))).astype(np.float32)
    return NoveltyCalibration(percentile=99, margin=1.5, appearance=AppearanceModel(descriptors),
                              texture_scores=rng.uniform(1.0, 6.0, 400), near_copy_distances=rng.uniform(0, 2.0, 200),
                              near_copy_correlations=rng.uniform(0.9, 1.0, 200))


def test_thresholds_are_collection_percentiles(calibration):
    assert calibration.alpha == pytest.approx(0.01)
    assert calibration.texture_high == pytest.approx(np.percentile(calibration.texture_scores, 99) * 1.5)
    assert calibration.texture_low == pytest.approx(np.percentile(calibration.texture_scores, 1) / 1.5)
    assert calibration.appearance_threshold == pytest.approx(np.percentile(calibration.appearance.loo_scores_, 99))
    assert calibration.near_copy_distance == pytest.approx(np.percentile(calibration.near_copy_distances, 95))
    assert calibration.near_copy_correlation == pytest.approx(np.percentile(calibration.near_copy_correlations, 1))
    summary = calibration.summary()
    assert summary["n_texture"] == 400 and summary["n_appearance"] == 200


def typical_score(calibration):
    return float(np.median(calibration.appearance.loo_scores_))


def test_a_typical_query_is_a_good_match(calibration):
    verdict = calibration.judge(5.0, 0.5, 10.0, appearance_score=typical_score(calibration), texture=3.0)
    assert verdict.good_match and not verdict.near_copy and verdict.reasons == []
    assert {c.name for c in verdict.checks} == {"distance", "appearance", "texture_noise", "texture_smooth"}
    assert 0.4 < verdict.appearance_p < 0.6


@pytest.mark.parametrize("kwargs, failed", [
    (dict(nearest_distance=11.0, distance_confidence=0.0, appearance_score=None, texture=3.0), "distance"),
    (dict(nearest_distance=5.0, distance_confidence=0.5, appearance_score=50.0, texture=3.0), "appearance"),
    (dict(nearest_distance=5.0, distance_confidence=0.5, appearance_score=None, texture=40.0), "texture_noise"),
    (dict(nearest_distance=5.0, distance_confidence=0.5, appearance_score=None, texture=0.0), "texture_smooth"),
])
def test_each_check_alone_makes_no_good_match(calibration, kwargs, failed):
    if kwargs["appearance_score"] is None:
        kwargs["appearance_score"] = typical_score(calibration)
    verdict = calibration.judge(distance_threshold=10.0, **kwargs)
    assert not verdict.good_match
    assert [c.name for c in verdict.checks if not c.passed] == [failed]
    assert len(verdict.reasons) == 1 and verdict.reasons[0]  # one sentence naming the value and the limit
    assert any(ch.isdigit() for ch in verdict.reasons[0])


def test_near_copies_are_exempt_from_appearance_and_smoothness_but_not_noise(calibration):
    close = calibration.near_copy_distance / 2
    # an edited (re-encoded) copy of an unusual picture: unusual histograms, smooth, like its original
    verdict = calibration.judge(close, 1.0, 10.0, appearance_score=50.0, texture=0.0, correlation=0.99)
    assert verdict.good_match and verdict.near_copy and verdict.appearance_p == 1.0
    assert {c.name for c in verdict.checks if c.exempt} == {"appearance", "texture_smooth"}
    # close in latent space but its thumbnail does not correlate with the picture: not a copy
    verdict = calibration.judge(close, 1.0, 10.0, appearance_score=50.0, texture=3.0, correlation=0.2)
    assert not verdict.near_copy and not verdict.good_match
    # pixel noise lands on flat pictures closer than any copy: never exempt
    verdict = calibration.judge(close, 1.0, 10.0, appearance_score=50.0, texture=40.0, correlation=0.99)
    assert not verdict.good_match and verdict.near_copy


def test_confidences_agree_with_the_verdict(calibration):
    distance_confidences = np.array([0.9, 0.6, 0.2, 0.005], np.float32)
    good = calibration.judge(5.0, 0.9, 10.0, appearance_score=typical_score(calibration), texture=3.0)
    confidences = calibration.confidences(good, distance_confidences)
    # capped by the query's appearance p-value, never above the distance p-value, first one >= alpha
    np.testing.assert_allclose(confidences, np.minimum(distance_confidences, good.appearance_p))
    assert confidences[0] >= calibration.alpha
    bad = calibration.judge(5.0, 0.5, 10.0, appearance_score=50.0, texture=3.0)
    assert not bad.good_match and not calibration.confidences(bad, distance_confidences).any()


def test_confidence_is_explained_in_one_sentence():
    sentence = confidence_means(99)
    assert sentence.count(".") == 1 and sentence.endswith(".") and "80 %" in sentence and "1%" in sentence
    assert "5%" in confidence_means(95)


def test_checks_without_data_are_off():
    bare = NoveltyCalibration(near_copy_distances=np.array([1.0]))
    verdict = bare.judge(2.0, 0.5, 10.0, appearance_score=None, texture=None)
    assert verdict.good_match and [c.name for c in verdict.checks] == ["distance"]
    few = NoveltyCalibration(texture_scores=np.ones(5)).with_samples(np.ones((5, DIM), np.float32), np.ones(5))
    assert not few.texture_enabled and few.texture_high is None and not few.appearance_enabled


def test_save_load_round_trip(tmp_path, calibration):
    calibration.save(tmp_path)
    loaded = NoveltyCalibration.load(tmp_path)
    assert loaded.summary() == calibration.summary()
    np.testing.assert_array_equal(loaded.appearance.loo_scores_, calibration.appearance.loo_scores_)


def test_an_old_calibration_is_refused(tmp_path, calibration):
    calibration.save(tmp_path)
    meta = tmp_path / "novelty.json"
    meta.write_text(meta.read_text().replace(f'"version": {NOVELTY_VERSION}', '"version": 1'))
    with pytest.raises(ValueError, match="version 1"):
        NoveltyCalibration.load(tmp_path)


def test_texture_score_separates_noise_flat_and_natural_texture():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (720, 1280, 3))
    flat = np.full((720, 1280, 3), 200)
    # smooth "natural" texture: low-frequency noise scaled up, plus faint sensor noise
    clouds = np.asarray(Image.fromarray(rng.integers(40, 220, (18, 32), dtype=np.uint8)).resize((1280, 720), Image.BICUBIC))
    natural = np.clip(clouds[..., None].astype(float) + rng.normal(0, 2, (720, 1280, 1)), 0, 255).repeat(3, axis=2)
    scores = {name: texture_score(png(a)) for name, a in [("noise", noise), ("flat", flat), ("natural", natural)]}
    assert scores["flat"] < 1e-3  # 0 up to float rounding in the resize
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


def test_thumb_correlation_survives_edits_but_not_other_pictures():
    rng = np.random.default_rng(2)
    base = np.asarray(Image.fromarray(rng.integers(0, 256, (9, 16, 3), dtype=np.uint8)).resize((96, 54), Image.BICUBIC))
    brighter = np.clip(base.astype(float) * 1.1 + 5, 0, 255)
    assert thumb_correlation(base, base) == pytest.approx(1.0)
    assert thumb_correlation(base, brighter) > 0.99
    other = np.asarray(Image.fromarray(rng.integers(0, 256, (9, 16, 3), dtype=np.uint8)).resize((96, 54), Image.BICUBIC))
    assert abs(thumb_correlation(base, other)) < 0.5
    flat = np.zeros_like(base) + np.array([40, 60, 160], np.uint8)  # a colour cast is not a correlation
    assert thumb_correlation(flat, base) == 0.0 and thumb_correlation(flat, flat) == 0.0


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
