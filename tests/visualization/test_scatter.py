"""The bokeh scatter: one renderer per cluster, a thumbnail tooltip, a light offline page."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pandas as pd
import pytest
from bokeh.models import CheckboxGroup, HoverTool

from iss.visualization.data import load_run_frame
from iss.visualization.scatter import build_scatter, scatter_source, write_scatter_page

from .conftest import N_CLUSTERS


def _frame(n=12):
    return pd.DataFrame({
        "pictures_id": [f"2017-{i:02d}" for i in range(n)], "pictures_x": range(n), "pictures_y": range(n),
        "label": [i % 3 for i in range(n)], "silhouette": [0.5] * n,
        "taken_at": pd.date_range("2017-11-13", periods=n, freq="20min"),
        "latitude": [10.0] * n, "longitude": [-20.0] * n, "location": ["Atlantic Ocean"] * n,
    })


def test_one_renderer_per_cluster_with_legend_checkboxes_and_tooltip():
    layout = build_scatter(_frame())
    plot, controls = layout.children
    renderers = [r for r in plot.renderers if r.name and r.name.startswith("cluster-")]
    assert [r.name for r in renderers] == ["cluster-0", "cluster-1", "cluster-2"]
    assert plot.legend[0].click_policy == "hide"
    assert [item.label.value for item in plot.legend[0].items] == ["cluster 0 (4)", "cluster 1 (4)", "cluster 2 (4)"]
    hover = plot.select_one({"type": HoverTool})
    assert hover.renderers == renderers
    assert '<img src="@{thumb}"' in hover.tooltips
    for field in ("pictures_id", "time", "location", "cluster"):
        assert f"@{{{field}}}" in hover.tooltips
    checkbox = layout.select_one({"type": CheckboxGroup})
    assert checkbox.active == [0, 1, 2]
    assert "visible" in checkbox.js_property_callbacks["change:active"][0].code


def test_source_strings_and_thumbnail_urls():
    source = scatter_source(_frame(3), thumb_prefix="../thumbs")
    assert source.data["thumb"] == ["../thumbs/2017-00.jpg", "../thumbs/2017-01.jpg", "../thumbs/2017-02.jpg"]
    assert source.data["time"][1] == "2017-11-13 00:20"
    assert source.data["location"][0] == "Atlantic Ocean · 10.0°N 20.0°W"
    assert source.data["label"] == ["0", "1", "2"]  # strings, for the GroupFilter views


def test_empty_frame_is_refused():
    with pytest.raises(ValueError, match="at least one picture"):
        build_scatter(_frame().iloc[:0])


def test_page_is_offline_and_light(sqlite_run, tmp_path):
    frame = load_run_frame(sqlite_run.engine, sqlite_run.run.run_id)
    page = write_scatter_page(frame, tmp_path / "run" / "scatter.html", thumb_prefix="../thumbs")
    html = page.read_text()
    # bokeh inlined, nothing fetched from the network, no base64 images
    assert not re.search(r"<script[^>]+src=\"https?://", html)
    assert "cdn.bokeh.org" not in html
    documents = re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S)
    assert len(documents) == 1 and "data:image" not in documents[0]  # thumbnails are files, not base64
    assert "Bokeh.embed" in html or "embed_items" in html
    urls = set(re.findall(r"\.\./thumbs/[^\"\\]+\.jpg", html))
    assert len(urls) == len(frame)
    assert {unquote(u.split("/")[-1])[:-4] for u in urls} == set(frame["pictures_id"])
    assert page.stat().st_size < 4_000_000  # bokeh's JS is ~1.6 MB; the data is small
    assert len(set(frame["label"])) == N_CLUSTERS


# --- above reports.scatter_aggregate_above: density images + a sample of points ---------------------
def _blobs(n=3000, k=3, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = rng.choice(k, size=n, p=[0.8, 0.19, 0.01][:k] if k == 3 else None)
    xy = np.array([[0, 0], [10, 0], [0, 10]])[labels] + rng.standard_normal((n, 2))
    return pd.DataFrame({"pictures_id": [f"p{i:05d}" for i in range(n)], "pictures_x": xy[:, 0],
                         "pictures_y": xy[:, 1], "label": labels, "silhouette": [0.5] * n})


def test_below_the_threshold_every_picture_is_a_point_and_no_density():
    frame = _blobs(300)
    layout = build_scatter(frame, aggregate_above=300)
    plot = layout.children[0]
    assert not [r for r in plot.renderers if (r.name or "").startswith("density-")]
    assert len(plot.select_one({"name": "cluster-0"}).data_source.data["x"]) == 300


def test_above_the_threshold_density_per_cluster_and_a_bounded_sample():
    import numpy as np

    from iss.visualization.scatter import scatter_sample

    frame = _blobs(3000)
    layout = build_scatter(frame, aggregate_above=1000, sample_size=200, density_bins=(64, 48))
    plot = layout.children[0]
    densities = sorted(r.name for r in plot.renderers if (r.name or "").startswith("density-"))
    assert densities == ["density-0", "density-1", "density-2"]
    data = plot.select_one({"name": "cluster-0"}).data_source.data
    n_points = len(data["x"])
    assert 200 <= n_points <= 250  # at most 1.25 x the sample
    labels = np.array(data["label"], dtype=int)
    # the 1% cluster (about 30 pictures) still gets points to hover: at least 200 / (4 * 3) of them, or all
    assert (labels == 2).sum() >= min(16, (frame["label"] == 2).sum())
    assert set(data["pictures_id"]) <= set(frame["pictures_id"])
    # the legend counts every picture, not the sample
    assert [i.label.value for i in plot.legend[0].items][0] == f"cluster 0 ({(frame['label'] == 0).sum():,})"
    # seeded: the same sample each time, another seed another one
    again = scatter_sample(frame, 1000, 200, random_state=0)
    assert again["pictures_id"].tolist() == list(data["pictures_id"])
    assert scatter_sample(frame, 1000, 200, random_state=1)["pictures_id"].tolist() != again["pictures_id"].tolist()
    assert scatter_sample(frame, 3000, 200) is None


def test_density_images_are_transparent_pngs_where_the_pictures_are():
    import base64
    import io

    import numpy as np
    from PIL import Image

    from iss.visualization.scatter import density_images

    frame = _blobs(3000)
    images, (x0, y0, w, h) = density_images(frame, bins=(80, 60))
    assert sorted(images) == [0, 1, 2]
    assert x0 < frame["pictures_x"].min() and x0 + w > frame["pictures_x"].max()
    assert y0 < frame["pictures_y"].min() and y0 + h > frame["pictures_y"].max()
    with Image.open(io.BytesIO(base64.b64decode(images[1].split(",", 1)[1]))) as png:
        assert png.mode == "RGBA" and png.size == (80, 60)
        alpha = np.asarray(png)[..., 3]
    # cluster 1 sits at x = 10, y = 0: right half, lower half (PNG rows run from the top)
    rows, cols = np.nonzero(alpha)
    assert cols.mean() > 40 and rows.mean() > 30
    assert 0 < (alpha > 0).mean() < 0.3


def test_thumb_urls_of_the_sample_and_their_count_checked():
    frame = _blobs(3000)
    urls = [f"u/{i}.jpg" for i in frame["pictures_id"]]
    plot = build_scatter(frame, thumb_urls=urls, aggregate_above=1000, sample_size=100).children[0]
    data = plot.select_one({"name": "cluster-0"}).data_source.data
    assert data["thumb"] == [f"u/{i}.jpg" for i in data["pictures_id"]]
    with pytest.raises(ValueError, match="thumb_urls has 10 URLs for 3000 pictures"):
        build_scatter(frame, thumb_urls=urls[:10], aggregate_above=1000)


def test_sample_above_the_threshold_is_refused_by_the_config():
    from iss.config_schema import validate_config

    with pytest.raises(ValueError, match=r"reports.scatter_sample \(5000\) is above reports.scatter_aggregate_above"):
        validate_config({"reports": {"scatter_aggregate_above": 1000, "scatter_sample": 5000}}, "test.yaml")
    with pytest.raises(ValueError, match="scatter_density_bins"):
        validate_config({"reports": {"scatter_density_bins": [8000, 800]}}, "test.yaml")


def test_reports_write_only_the_sampled_thumbnails(sqlite_run):
    from iss.visualization.data import cache_for, get_run
    from iss.visualization.reports import THUMBS_FOLDER, render_scatter

    cfg = sqlite_run.cfg.with_overrides({"reports": {"scatter_aggregate_above": 40, "scatter_sample": 20,
                                                     "scatter_density_bins": [32, 32]}})
    frame = load_run_frame(sqlite_run.engine, sqlite_run.run.run_id)
    assert len(frame) > 40
    page = render_scatter(cfg, get_run(sqlite_run.engine, sqlite_run.run.run_id), frame, cache_for(cfg))
    written = {p.stem for p in (cfg.path("reports") / THUMBS_FOLDER).glob("*.jpg")}
    html = page.read_text()
    shown = {unquote(u.split("/")[-1])[:-4] for u in re.findall(r"\.\./thumbs/[^\"\\]+\.jpg", html)}
    assert 20 <= len(written) < len(frame)
    assert shown == written
    document = re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S)[0]
    assert document.count("data:image/png;base64,") == N_CLUSTERS  # one density image per cluster
