"""Similar-picture search with a really trained encoder on a generated ISS-like collection:
collection pictures and edited copies find their original, real photographs and pictures from
elsewhere get "no good match", new frames of the same kinds do not, confidences agree with the
verdict, and bad files are refused."""

from __future__ import annotations

import numpy as np
import pytest

from iss.search.service import QueryError
from tests.search.conftest import N_PICTURES, bomb_png, near_copies, new_frames, out_of_collection
from tests.search.photographs import real_photographs

pytestmark = pytest.mark.slow  # the shared setup trains a model (about 30-60 s once per session)


def sample_files(env, step=10):
    return sorted(env.collection.glob("*.jpg"))[::step]


def test_setup_is_a_real_trained_collection(search_env):
    service = search_env.service
    assert len(service.index) == N_PICTURES
    summary = service.calibration.summary()
    assert summary["n_texture"] == summary["n_appearance"] == N_PICTURES and summary["n_near_copy"] >= 100
    # calibrated scales are ordered: an edited copy is much closer than a typical nearest neighbour
    assert 0 < service.calibration.near_copy_distance < np.median(service.index.loo_sorted_) < service.index.threshold_


def test_collection_pictures_find_themselves(search_env):
    service = search_env.service
    for path in sample_files(search_env, step=25):
        result = service.search(path, k=5)
        first = result.hits[0]
        assert first.pictures_id == path.stem and first.distance < 1e-3
        assert result.good_match and result.verdict.near_copy and first.confidence == pytest.approx(1.0)


def test_near_copies_find_the_original_first(search_env):
    """Re-encoded at quality 40-50, cropped 2-5%, brightened 10%, and all three at once."""
    service = search_env.service
    index, near = service.index, service.calibration.near_copy_distance
    checked_distinct = 0
    for path in sample_files(search_env, step=10):
        row = index.row_of(path.stem)
        has_near_duplicate = index.knn_distances_[row, 0] <= near
        for edit, data in near_copies(path).items():
            result = service.search(data, k=5)
            ids = [h.pictures_id for h in result.hits]
            assert result.good_match, (path.stem, edit, result.verdict.reasons)
            assert result.hits[0].confidence >= service.calibration.alpha
            if not has_near_duplicate:
                assert ids[0] == path.stem, (path.stem, edit, ids)
            else:
                # the collection holds near-identical pictures (e.g. blank "live is off" slates of one
                # colour; brightening one makes it another): the first result must be one of them,
                # as close to the original as an edited copy is
                first_row = index.row_of(ids[0])
                gap = np.linalg.norm(index.latents_[first_row] - index.latents_[row])
                assert gap <= 2 * near, (path.stem, edit, ids[0], gap)
        checked_distinct += not has_near_duplicate
    assert checked_distinct >= 20  # most pictures have no near-duplicate: the strict case dominates


def test_pictures_from_elsewhere_have_no_good_match(search_env):
    service = search_env.service
    for name, data in out_of_collection(n_fashion=5).items():
        result = service.search(data, k=5)
        assert not result.good_match, (name, [(c.name, c.value, c.threshold) for c in result.verdict.checks])
        assert result.verdict.reasons and all(h.confidence == 0.0 for h in result.hits)
        assert all(not h.good_match for h in result.hits)
        assert len(result.hits) == 5  # the closest pictures are still listed, flagged


def test_real_photographs_have_no_good_match(search_env):
    """scikit-learn's temple and flower, and every other real photograph installed packages ship."""
    service = search_env.service
    photographs = real_photographs()
    results = {name: service.search(data, k=5) for name, data in photographs.items()}
    for name in ("china", "flower"):
        result = results[name]
        assert not result.good_match, (name, [(c.name, c.value, c.threshold) for c in result.verdict.checks])
        assert result.as_dict()["verdict"] == "no good match"
        assert all(h.confidence == 0.0 and not h.good_match for h in result.hits)
    passed = [name for name, r in results.items() if r.good_match]
    assert len(photographs) >= 3 and len(passed) <= 0.05 * len(photographs), passed


def test_a_held_out_frame_is_a_good_match_with_a_confidence_that_says_so(search_env):
    service = search_env.service
    (name, data), = new_frames(N_PICTURES + 3, 1).items()  # never indexed
    result = service.search(data, k=5)
    assert result.good_match and not result.verdict.near_copy, (name, result.verdict.reasons)
    assert result.as_dict()["verdict"] == "good match"
    assert result.hits[0].good_match and result.hits[0].confidence >= service.calibration.alpha
    assert "80 %" in result.as_dict()["confidence_means"]


def test_new_frames_of_the_same_kinds_are_good_matches(search_env):
    """The calibration's other side: genuine new pictures from the same source are not rejected."""
    service = search_env.service
    results = {name: service.search(data, k=3) for name, data in new_frames(N_PICTURES, 40).items()}
    rejected = {name: r.verdict.reasons for name, r in results.items() if not r.good_match}
    assert len(rejected) <= 2, rejected  # ~1% expected by construction (99th percentile x 1.5)
    confidences = [r.hits[0].confidence for r in results.values() if r.good_match]
    assert all(c >= service.calibration.alpha for c in confidences)  # a good match never says "unlike"
    assert 0.15 < np.median(confidences) < 0.95  # typical, not near-copies


def test_results_carry_distance_confidence_cluster_and_time(search_env):
    service = search_env.service
    path = sample_files(search_env)[3]
    result = service.search(path.read_bytes(), k=12)
    hits = result.hits
    assert [h.rank for h in hits] == list(range(1, 13))
    distances = [h.distance for h in hits]
    assert distances == sorted(distances)
    assert all(h.cluster is not None and h.run_id == search_env.run_id for h in hits)
    assert hits[0].taken_at.startswith(f"{path.stem[:4]}-{path.stem[4:6]}-{path.stem[6:8]}")
    confidences = [h.confidence for h in hits]
    assert confidences == sorted(confidences, reverse=True)
    payload = result.as_dict()
    # the picture itself: a copy of a collection picture
    assert payload["verdict"] == "good match (a copy)" and payload["results"][0]["thumb_url"] == f"/thumbs/{path.stem}.jpg"
    assert set(payload["checks"]) == {"distance", "appearance", "texture_noise", "texture_smooth"}
    assert payload["confidence_means"]


@pytest.mark.parametrize("data, reason, status", [
    (b"", "empty", 400),
    (b"not a picture at all" * 20, "not_image", 400),
    (bomb_png(), "too_large", 413),
])
def test_bad_files_are_refused(search_env, data, reason, status):
    with pytest.raises(QueryError) as caught:
        search_env.service.search(data)
    assert caught.value.reason == reason and caught.value.status == status


def test_truncated_picture_is_refused(search_env):
    data = sample_files(search_env)[0].read_bytes()
    with pytest.raises(QueryError) as caught:
        search_env.service.search(data[: len(data) // 3])
    assert caught.value.status == 400 and caught.value.reason in ("truncated", "corrupt")
