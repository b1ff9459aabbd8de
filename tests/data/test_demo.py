"""Tests for iss.data.demo, the synthetic ISS HDEV collection generator.

Most tests draw small frames (the layout scales with the frame height, so a small
frame is a thumbnail of the full-size one); one test checks full-size frames.
"""

import csv
from datetime import datetime, timedelta

import numpy as np
import pytest
from PIL import Image

from iss.data.demo import (
    KIND_PROBABILITIES,
    KINDS,
    DemoSummary,
    coarse_location,
    frame_kind,
    generate_collection,
    ground_track,
    history_lines,
    render_frame,
)

SMALL = (160, 90)
LOCATIONS = {"Atlantic Ocean", "Pacific Ocean", "Indian Ocean", "Southern Ocean", "Europe", "Africa",
             "Asia", "North America", "South America", "Australia"}


def _generate(out_dir, **kwargs):
    options = {"n": 24, "seed": 7, "size": SMALL, "workers": 1, "progress": False}
    options.update(kwargs)
    return generate_collection(out_dir, **options)


def _tree_bytes(root):
    """Every file under ``root`` (relative path -> bytes)."""
    return {str(path.relative_to(root)): path.read_bytes()
            for path in sorted(root.rglob("*")) if path.is_file()}


def _read_labels(path):
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def _thumbnail(image):
    """The autoencoder's view of a frame: 48x27 pixels, floats in [0, 1]."""
    return np.asarray(image.resize((48, 27), Image.BILINEAR), dtype=np.float32) / 255.0


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """A 24-frame collection drawn by two worker processes."""
    out_dir = tmp_path_factory.mktemp("demo")
    summary = _generate(out_dir, workers=2)
    return out_dir, summary


def test_summary_describes_what_was_written(collection):
    out_dir, summary = collection
    assert isinstance(summary, DemoSummary)
    assert summary.n_frames == 24
    assert summary.collection_dir == out_dir / "collections"
    assert summary.history_path == out_dir / "history" / "history.txt"
    assert summary.labels_path == out_dir / "labels.csv"
    assert set(summary.kinds) == set(KINDS)
    assert sum(summary.kinds.values()) == 24
    assert summary.seconds > 0


def test_frames_are_named_every_20_minutes_from_the_start(collection):
    out_dir, _ = collection
    names = sorted(path.name for path in (out_dir / "collections").iterdir())
    expected = [(datetime(2017, 11, 13) + timedelta(minutes=20 * i)).strftime("%Y%m%d-%H%M%S") + ".jpg"
                for i in range(24)]
    assert names == expected
    assert names[:2] == ["20171113-000000.jpg", "20171113-002000.jpg"]


def test_frames_are_rgb_jpegs_of_the_requested_size(collection):
    out_dir, _ = collection
    for path in (out_dir / "collections").iterdir():
        with Image.open(path) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", SMALL)


def test_labels_have_one_row_per_file(collection):
    out_dir, summary = collection
    rows = _read_labels(out_dir / "labels.csv")
    assert rows[0] == ["pictures_id", "kind"]
    stems = sorted(path.stem for path in (out_dir / "collections").iterdir())
    assert [row[0] for row in rows[1:]] == stems
    kinds = [row[1] for row in rows[1:]]
    assert set(kinds) <= set(KINDS)
    assert {kind: kinds.count(kind) for kind in KINDS} == summary.kinds
    assert kinds == [frame_kind(7, index)[0] for index in range(24)]


def test_history_lines_are_lat_lon_id_location(collection):
    out_dir, summary = collection
    lines = (out_dir / "history" / "history.txt").read_text().splitlines()
    assert len(lines) == summary.n_located == round(0.7 * 24)
    stems = {path.stem for path in (out_dir / "collections").iterdir()}
    ids = []
    for line in lines:
        fields = line.split(";")
        assert len(fields) == 4, line
        latitude, longitude = float(fields[0]), float(fields[1])
        assert abs(latitude) <= 51.7
        assert -180.0 <= longitude <= 180.0
        assert fields[2] in stems
        assert fields[3] in LOCATIONS
        ids.append(fields[2])
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_same_seed_gives_identical_files_whatever_the_number_of_workers(collection, tmp_path):
    out_dir, _ = collection
    _generate(tmp_path, workers=1)
    assert _tree_bytes(tmp_path) == _tree_bytes(out_dir)


def test_different_seed_gives_different_frames(collection, tmp_path):
    out_dir, _ = collection
    _generate(tmp_path, n=6, seed=8)
    changed = [(tmp_path / "collections" / path.name).read_bytes() != path.read_bytes()
               for path in sorted((out_dir / "collections").iterdir())[:6]]
    assert all(changed)
    history = "history/history.txt"
    assert (tmp_path / history).read_text() != (out_dir / history).read_text()


def test_rerun_keeps_existing_frames_and_fills_in_missing_ones(tmp_path):
    _generate(tmp_path, n=8)
    before = _tree_bytes(tmp_path)
    frames = sorted((tmp_path / "collections").iterdir())
    # A frame already there is kept as is, even if its content is not what the seed gives...
    frames[0].write_bytes(b"kept")
    # ...while a missing or empty one is drawn again.
    frames[1].unlink()
    frames[2].write_bytes(b"")
    (tmp_path / "labels.csv").write_text("stale")

    summary = _generate(tmp_path, n=8)

    after = _tree_bytes(tmp_path)
    assert after.pop("collections/" + frames[0].name) == b"kept"
    before.pop("collections/" + frames[0].name)
    assert after == before
    assert summary.n_frames == 8


def test_every_kind_is_drawn_with_roughly_the_intended_share(tmp_path):
    kinds = [frame_kind(0, index)[0] for index in range(4000)]
    for kind, share in KIND_PROBABILITIES.items():
        assert abs(kinds.count(kind) / len(kinds) - share) < 0.03, kind
    summary = _generate(tmp_path, n=60, seed=0, size=(64, 36))
    assert all(count > 0 for count in summary.kinds.values()), summary.kinds


def test_full_size_frames_and_their_thumbnails_agree():
    for index, kind in enumerate(KINDS):
        full = render_frame(kind, np.random.default_rng([1, index]))
        assert (full.mode, full.size) == ("RGB", (1280, 720))
        small = render_frame(kind, np.random.default_rng([1, index]), SMALL)
        # Same generator state, same picture: the 48x27 views nearly coincide.
        assert np.abs(_thumbnail(full) - _thumbnail(small)).mean() < 0.08, kind


def test_full_size_collection(tmp_path):
    summary = _generate(tmp_path, n=3, size=(1280, 720), quality=85)
    paths = sorted(summary.collection_dir.iterdir())
    assert len(paths) == 3
    for path in paths:
        with Image.open(path) as image:
            assert image.size == (1280, 720)
        assert 10_000 < path.stat().st_size < 1_000_000


def test_kinds_are_told_apart_by_mean_colours_at_48x27():
    """Guards the downstream clustering: a 3x3 grid of mean colours separates the kinds."""
    features, labels = [], []
    for index in range(240):
        kind, rng = frame_kind(0, index)
        cells = _thumbnail(render_frame(kind, rng, SMALL)).reshape(3, 9, 3, 16, 3).mean(axis=(1, 3))
        features.append(cells.ravel())
        labels.append(KINDS.index(kind))
    features, labels = np.array(features), np.array(labels)
    train = np.arange(len(labels)) < 120
    assert set(labels[train]) == set(range(len(KINDS)))
    centroids = np.stack([features[train & (labels == kind)].mean(axis=0) for kind in range(len(KINDS))])
    distances = ((features[~train, None, :] - centroids[None]) ** 2).sum(axis=-1)
    accuracy = float(np.mean(distances.argmin(axis=1) == labels[~train]))
    assert accuracy > 0.8


def test_kinds_have_their_layout():
    """Each kind's signature at 48x27: where it is dark, bright, flat or warm."""
    rng = np.random.default_rng(3)
    for _ in range(5):
        horizon = _thumbnail(render_frame("horizon", rng, SMALL))
        assert horizon[:3].mean() < 0.05 < 0.2 < horizon[-5:].mean()  # black space over Earth
        nadir = _thumbnail(render_frame("nadir", rng, SMALL))
        assert nadir[:3].mean() > 0.1 and nadir.std() > 0.05  # textured up to the top edge
        night = _thumbnail(render_frame("night", rng, SMALL))
        assert night.mean() < 0.2 and night.max() > 0.3  # dark, with bright lights
        glare = _thumbnail(render_frame("glare", rng, SMALL))
        assert glare.max() > 0.95 and glare[:9].mean() > 0.08  # the sun and its violet veil light up the sky
        live_off = _thumbnail(render_frame("live_off", rng, SMALL))
        assert np.median(np.abs(live_off - np.median(live_off, axis=(0, 1)))) < 0.03  # flat


def test_history_lines_without_rendering():
    ids = [f"id{index:03d}" for index in range(200)]
    lines = history_lines(ids, [20.0 * index for index in range(200)], seed=2, fraction=0.7)
    assert len(lines) == 140
    assert all(len(line.split(";")) == 4 for line in lines)
    assert history_lines(ids, range(200), fraction=0.0) == []
    assert len(history_lines(ids, range(200), fraction=1.0)) == 200
    assert history_lines(ids, range(200), seed=2) == history_lines(ids, range(200), seed=2)


def test_ground_track_is_an_inclined_orbit_drifting_west():
    minutes = np.arange(0.0, 3 * 1440.0, 1.0)
    latitude, longitude = ground_track(minutes, seed=0)
    assert np.abs(latitude).max() <= 51.6 + 1e-9
    assert np.abs(latitude).max() > 51.5
    assert np.all((-180.0 <= longitude) & (longitude < 180.0))
    # One orbit later the ISS is back at the same latitude, ~23.6 degrees further west.
    period = 92.7
    lat_a, lon_a = ground_track([100.0, 100.0 + period], seed=0)
    assert lat_a[1] == pytest.approx(lat_a[0], abs=1e-6)
    shift = (lon_a[1] - lon_a[0] + 180.0) % 360.0 - 180.0
    assert shift == pytest.approx(-(360.0 * period / 1436.07 + 5.0 * period / 1440.0), abs=1e-6)
    # Latitude changes smoothly minute to minute (at most ~4 degrees).
    assert np.abs(np.diff(latitude)).max() < 4.0


@pytest.mark.parametrize(("latitude", "longitude", "name"), [
    (48.85, 2.35, "Europe"), (10.0, 20.0, "Africa"), (35.0, 100.0, "Asia"), (-25.0, 135.0, "Australia"),
    (40.0, -100.0, "North America"), (-10.0, -60.0, "South America"), (0.0, -30.0, "Atlantic Ocean"),
    (0.0, -150.0, "Pacific Ocean"), (-10.0, 80.0, "Indian Ocean"), (-50.0, 0.0, "Southern Ocean"),
])
def test_coarse_location(latitude, longitude, name):
    assert coarse_location(latitude, longitude) == name


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n": 0}, "n=0"),
    ({"n": -3}, "n=-3"),
    ({"n": 2.5}, "n=2.5"),
    ({"seed": -1}, "seed=-1"),
    ({"size": (0, 0)}, r"size=\(0, 0\)"),
    ({"size": (1280,)}, "size="),
    ({"size": (1280.5, 720)}, "size="),
    ({"history_fraction": 1.5}, "history_fraction=1.5"),
    ({"workers": 0}, "workers=0"),
    ({"interval_minutes": 0}, "interval_minutes=0"),
])
def test_generate_collection_rejects_bad_values(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _generate(tmp_path, **kwargs)
    assert not list(tmp_path.rglob("*.jpg"))


def test_render_frame_rejects_bad_values():
    with pytest.raises(ValueError, match="kind='aurora'"):
        render_frame("aurora", np.random.default_rng(0))
    with pytest.raises(ValueError, match="size="):
        render_frame("nadir", np.random.default_rng(0), size=(10, 10))


def test_cli_writes_the_collection(tmp_path):
    from typer.testing import CliRunner

    from iss.exec.generate_demo import app

    result = CliRunner().invoke(app, ["--out-dir", str(tmp_path), "--n", "2", "--seed", "1", "--no-odd-frames"])
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in (tmp_path / "collections").iterdir()) == [
        "20171113-000000.jpg", "20171113-002000.jpg"]
    assert "frames:" in result.output
    assert len(_read_labels(tmp_path / "labels.csv")) == 3
