"""Facets overview statistics, the sprite atlas and the dive's data."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from iss.config import load_config
from iss.data.cache import ImageCache
from iss.db.engine import get_engine
from iss.visualization.data import list_runs, load_pictures_frame
from iss.visualization.facets import (
    build_facets,
    build_sprite,
    dive_payload,
    facets_table,
    overview_statistics,
)
from tests.synthetic import make_synthetic_run, synthetic_thumbs

from .conftest import N_CLUSTERS, N_PICTURES


@pytest.fixture
def table_and_meta(small_run):
    runs = list_runs(small_run.engine)
    frame = load_pictures_frame(small_run.engine, [r["run_id"] for r in runs])
    return frame, *facets_table(frame, runs)


def test_table_has_the_explorer_columns(table_and_meta):
    frame, table, meta = table_and_meta
    for name in ("cluster", "silhouette", "x", "y", "run", "hour", "day/night", "location", "split", "month"):
        assert name in table, name
    assert meta["cluster"]["kind"] == "cat" and meta["hour"]["kind"] == "num"
    assert set(table["cluster"]) == {f"cluster {k}" for k in range(N_CLUSTERS)}
    assert table["hour"].tolist() == frame["taken_at"].dt.hour.astype(float).tolist()
    located = frame["is_day"].notna()
    assert set(table.loc[located, "day/night"]) <= {"day", "night"}
    assert table.loc[~located, "day/night"].isna().all()


def test_overview_statistics_match_pandas(table_and_meta):
    _, table, meta = table_and_meta
    stats = overview_statistics(table, meta)
    groups = dict(stats["groups"])
    assert groups["all"] == N_PICTURES
    assert groups["train"] + groups.get("test", 0) + groups.get("valid", 0) == N_PICTURES
    features = {f["name"]: f for f in stats["features"]}
    size = features["file size (kB)"]["stats"]["all"]
    assert size["mean"] == pytest.approx(table["file size (kB)"].mean())
    assert size["median"] == pytest.approx(table["file size (kB)"].median())
    assert sum(size["hist"]) == N_PICTURES
    latitude = features["latitude"]["stats"]["all"]
    assert latitude["missing"] == pytest.approx(table["latitude"].isna().mean())
    train = features["latitude"]["stats"]["train"]
    assert train["count"] == table.loc[table["split"] == "train", "latitude"].notna().sum()
    cluster = features["cluster"]["stats"]["all"]
    assert cluster["unique"] == N_CLUSTERS
    counts = table["cluster"].value_counts()
    assert cluster["top"][0] == (counts.index[0], int(counts.iloc[0]))
    # a constant column is perfectly non-uniform, a spread one much less so
    assert features["width"]["non_uniformity"] == pytest.approx(1.0)
    assert features["hour"]["non_uniformity"] < 0.5


def test_sprite_tiles_are_downsampled_thumbnails(tmp_path):
    thumbs = synthetic_thumbs(np.arange(7), seed=3)  # photo-like: JPEG keeps them close
    cache = ImageCache(tmp_path / "cache", input_size=(48, 27), thumb_size=(96, 54))
    ids = [f"p{i}" for i in range(7)]
    cache.append(ids, thumbs[:, ::2, ::2], thumbs)
    sprite = build_sprite(cache, ids[::-1], tmp_path / "sprite.jpg", tile=(48, 27), quality=95)
    columns = sprite["columns"]
    assert sprite["tile"] == [48, 27] and columns * sprite["rows"] >= 7
    with Image.open(tmp_path / "sprite.jpg") as image:
        assert image.size == (columns * 48, sprite["rows"] * 27)
        atlas = np.asarray(image.convert("RGB"), dtype=float)
    for position, picture in enumerate(range(6, -1, -1)):  # the atlas follows the order of ids given
        r, c = divmod(position, columns)
        tile = atlas[r * 27:(r + 1) * 27, c * 48:(c + 1) * 48]
        expected = thumbs[picture].reshape(27, 2, 48, 2, 3).mean(axis=(1, 3))
        assert np.abs(tile - expected).mean() < 6
        other = thumbs[(picture + 1) % 7].reshape(27, 2, 48, 2, 3).mean(axis=(1, 3))
        assert np.abs(tile - expected).mean() < np.abs(tile - other).mean()


def test_dive_payload_codes_categories(table_and_meta):
    _, table, meta = table_and_meta
    payload = dive_payload(table, meta, {"url": "s.jpg", "tile": [48, 27], "columns": 8, "rows": 8})
    columns = {c["name"]: c for c in payload["columns"]}
    cluster = columns["cluster"]
    assert cluster["categories"] == [f"cluster {k}" for k in range(N_CLUSTERS)]
    decoded = [cluster["categories"][c] for c in cluster["codes"]]
    assert decoded == table["cluster"].tolist()
    assert len(columns["hour"]["values"]) == N_PICTURES
    assert columns["latitude"]["values"].count(None) == int(table["latitude"].isna().sum())
    assert payload["thumbs"][0] == f"thumbs/{payload['ids'][0]}.jpg"
    json.dumps(payload, allow_nan=False)  # strict JSON: no NaN


def test_build_facets_writes_self_contained_pages(sqlite_run):
    cfg, engine = sqlite_run.cfg, sqlite_run.engine
    overview, dive, sprite = build_facets(cfg, engine)
    assert [p.name for p in (overview, dive, sprite)] == ["facets_overview.html", "facets_dive.html",
                                                           "facets_sprite.jpg"]
    for page in (overview, dive):
        html = page.read_text()
        assert not re.search(r"(src|href)=['\"]https?://", html), page.name
        assert "<link rel='import'" not in html  # no HTML Imports
    data = re.search(r"<script id='dive-data' type='application/json'>(.*?)</script>", dive.read_text(), re.S)
    payload = json.loads(data.group(1))
    assert payload["n"] == N_PICTURES
    assert all((cfg.path("reports") / url).exists() for url in payload["thumbs"])
    assert (cfg.path("reports") / "index.html").exists()
    # re-running is idempotent: same files, same content
    before = dive.read_bytes()
    build_facets(cfg, engine)
    assert dive.read_bytes() == before


def test_the_dive_reads_only_the_pictures_it_shows(sqlite_run):
    """Above reports.facets_dive_max the dive is a seeded draw: its sprite and thumbnails read and
    write only those pictures, while the overview still counts every one."""
    from iss.clustering.names import ensure_cluster_names

    cfg = sqlite_run.cfg.with_overrides({"reports": {"facets_dive_max": 25}})
    # the cluster names are described once per run, from their own bounded spread (tests/clustering)
    ensure_cluster_names(ImageCache(cfg.path("cache")), sqlite_run.engine, sqlite_run.run.run_id)
    read = []
    get_thumbs = ImageCache.get_thumbs

    def counting(self, ids):
        read.extend(ids)
        return get_thumbs(self, ids)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ImageCache, "get_thumbs", counting)
        overview, dive, sprite = build_facets(cfg, sqlite_run.engine)
    html = dive.read_text()
    payload = json.loads(re.search(r"<script id='dive-data' type='application/json'>(.*?)</script>", html, re.S)
                         .group(1))
    assert payload["n"] == 25 and len(set(payload["ids"])) == 25
    # the sprite's tiles, then the thumbnail files: those pictures, nothing else
    assert set(read) == set(payload["ids"]) and len(read) == 2 * 25
    assert {p.stem for p in (cfg.path("reports") / "thumbs").glob("*.jpg")} == set(payload["ids"])
    assert "shows 25 of them" in html
    assert f"{N_PICTURES:,} pictures" in overview.read_text()
    with Image.open(sprite) as atlas:
        assert atlas.size[0] * atlas.size[1] < 2 * 25 * 48 * 27
    from iss.config import ConfigError

    with pytest.raises(ConfigError, match="reports.facets_dive_max is 0; expected greater than or equal to 1"):
        sqlite_run.cfg.with_overrides({"reports": {"facets_dive_max": 0}})


def test_all_runs_become_columns(sqlite_run):
    cfg, engine = sqlite_run.cfg, sqlite_run.engine
    second = make_synthetic_run(cfg, engine, n_pictures=N_PICTURES // 2, n_clusters=3, model_name="other")
    dive = build_facets(cfg.with_overrides({"reports": {"facets_runs": "all"}}), engine)[1]
    payload = json.loads(re.search(r"type='application/json'>(.*?)</script>", dive.read_text(), re.S).group(1))
    names = [c["name"] for c in payload["columns"]]
    assert "cluster" in names and f"cluster · run {sqlite_run.run.run_id}" in names
    run_column = next(c for c in payload["columns"] if c["name"] == "run")
    assert set(run_column["categories"]) == {f"run {second.run_id} · n2d", f"run {sqlite_run.run.run_id} · n2d"}


def test_cli_builds_the_pages(sqlite_run, monkeypatch):
    from iss.exec.facets import app

    root = sqlite_run.cfg.root
    monkeypatch.setenv("ISS_ROOT", str(root))
    monkeypatch.setenv("MODE", "demo")
    # the demo config's own database (data/iss_demo.db under the root) is still empty
    result = CliRunner().invoke(app, [])
    assert result.exit_code == 1  # a clear error, not a traceback
    assert isinstance(result.exception, SystemExit)
    demo_cfg = load_config(mode="demo", root=root)
    engine = get_engine(demo_cfg.database_url)
    make_synthetic_run(demo_cfg, engine, n_pictures=20, n_clusters=2)
    engine.dispose()
    result = CliRunner().invoke(app, [])
    assert result.exit_code == 0, result.output
    assert "facets_dive.html" in result.output
