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
