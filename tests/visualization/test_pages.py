"""Every report page in headless Chromium: no console error, something drawn, tooltips with thumbnails,
cluster toggling, and the dive rebinned by cluster."""

from __future__ import annotations

import time

import numpy as np
import pytest

from iss.clustering.names import cluster_names
from tests.browser import png_pixel_std

from .conftest import N_CLUSTERS, N_PICTURES

pytestmark = pytest.mark.browser

BOKEH_IDLE = "typeof Bokeh !== 'undefined' && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle"
TOOLTIP_THUMB_LOADED = "els => els.filter(i => i.src.includes('/thumbs/') && i.complete && i.naturalWidth > 0).length"


def _glyph_position(browser, renderer_name: str, k: int = 0) -> tuple[float, float]:
    """Viewport coordinates of the k-th point of a named bokeh renderer."""
    return browser.js("""
        const view = [...Bokeh.index.all_views()].find(v => v.model && v.model.name === arguments[0]);
        const rect = view.parent.canvas_view.el.getBoundingClientRect();
        return [rect.left + view.glyph.sx[arguments[1]], rect.top + view.glyph.sy[arguments[1]]];
    """, renderer_name, k)


def _screenshot_std(browser, tmp_path, name: str) -> float:
    return png_pixel_std(browser.screenshot(tmp_path / f"{name}.png"))


def test_scatter_page(browser, rendered, tmp_path):
    load_s = browser.open(rendered.scatter, wait_js=BOKEH_IDLE)
    assert load_s < 30
    assert browser.console_errors() == []
    assert _screenshot_std(browser, tmp_path, "scatter") > 10
    renderers = browser.js("return [...Bokeh.index.all_views()].filter(v => v.model && v.model.name && "
                           "v.model.name.startsWith('cluster-')).map(v => v.model.name)")
    assert sorted(renderers) == [f"cluster-{k}" for k in range(N_CLUSTERS)]

    # hover a point of cluster 1: the tooltip shows its thumbnail, loaded from thumbs/
    x, y = _glyph_position(browser, "cluster-1")
    browser.hover(x, y)
    assert browser.wait_for(f"({_deep_eval_js('img', TOOLTIP_THUMB_LOADED)})", timeout=10) >= 1
    texts = browser.deep_eval(".bk-tooltip, .bk-Tooltip, [class*=tooltip]", "els => els.map(e => e.textContent)")
    name = cluster_names(rendered.env.engine, rendered.env.run.run_id)[1]["name"]
    assert any(f"1 · {name}" in t for t in texts)

    # untick cluster 0 in the checkbox widget: its renderer hides; "Show all" brings it back
    box = browser.deep_eval("input[type=checkbox]", "els => els.map(e => { const r = e.getBoundingClientRect();"
                                                    " return [r.left + r.width / 2, r.top + r.height / 2]; })")
    assert len(box) == N_CLUSTERS
    browser.click(*box[0])
    visible = "Bokeh.documents[0].get_model_by_name('cluster-0').visible"
    browser.wait_for(f"!{visible}", timeout=5)
    assert browser.js("return Bokeh.documents[0].get_model_by_name('cluster-1').visible")
    buttons = browser.deep_eval("button", "els => els.filter(b => b.textContent.trim() === 'Show all')"
                                          ".map(b => { const r = b.getBoundingClientRect();"
                                          " return [r.left + r.width / 2, r.top + r.height / 2]; })")
    browser.click(*buttons[0])
    browser.wait_for(visible, timeout=5)
    assert browser.console_errors() == []


def _deep_eval_js(selector: str, function_js: str) -> str:
    from tests.browser import DEEP_QUERY_FUNCTION

    return f"({function_js})(({DEEP_QUERY_FUNCTION})({selector!r}))"


def test_run_index_page(browser, rendered, tmp_path):
    browser.open(rendered.run_index)
    assert _screenshot_std(browser, tmp_path, "run_index") > 10
    # scroll through the page so lazy images load, then every image must have decoded
    height = browser.js("return document.body.scrollHeight")
    for y in range(0, height + 1000, 700):
        browser.js(f"window.scrollTo(0, {y})")
        time.sleep(0.05)
    n_images = browser.js("return document.images.length")
    assert n_images >= N_CLUSTERS + 3  # overview, silhouettes, projection, one mosaic per cluster
    browser.wait_for("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)", timeout=10)
    assert browser.console_errors() == []
    links = browser.js("return Array.from(document.links).map(a => a.getAttribute('href'))")
    assert "scatter.html" in links and "../facets_dive.html" in links


def test_reports_index_served_over_http(browser, rendered, http_server, tmp_path):
    base = http_server(rendered.reports_index.parent)  # as `make serve_reports` does
    browser.open(f"{base}/index.html")
    assert browser.console_errors() == []
    assert _screenshot_std(browser, tmp_path, "reports_index") > 10
    run_link = browser.js("return Array.from(document.links).map(a => a.href).find(h => h.includes('/run-'))")
    browser.open(run_link)
    assert browser.js("return document.title").startswith("Run ")
    browser.open(f"{base}/facets_dive.html")
    browser.wait_for("window.dive && dive.spriteReady", timeout=10)
    assert browser.console_errors() == []


def test_overview_page(browser, rendered, tmp_path):
    browser.open(rendered.overview)
    assert browser.console_errors() == []
    assert _screenshot_std(browser, tmp_path, "overview") > 10
    shown = "document.querySelectorAll('tbody.f:not([style*=\"none\"])').length"
    total = browser.js(f"return {shown}")
    assert total >= 15
    assert browser.js("return document.querySelectorAll('tbody.f svg rect').length") > 0  # histograms
    # filtering by name keeps only matching columns
    browser.js("const f = document.getElementById('feature-filter'); f.value = 'cluster';"
               "f.dispatchEvent(new Event('input'))")
    names = browser.js("return Array.from(document.querySelectorAll('tbody.f'))"
                       ".filter(b => b.style.display !== 'none').map(b => b.dataset.name)")
    assert names == ["cluster"]
    # sorting by missing share puts the most incomplete column first
    browser.js("const f = document.getElementById('feature-filter'); f.value = '';"
               "f.dispatchEvent(new Event('input'));")
    browser.select_option("#feature-sort", "missing")
    missing = browser.js("return Array.from(document.querySelectorAll('#numeric tbody.f'))"
                         ".map(b => parseFloat(b.dataset.missing))")
    assert missing == sorted(missing, reverse=True) and missing[0] > 0


def test_dive_page_rebins_colours_and_shows_pictures(browser, rendered, tmp_path):
    browser.open(rendered.dive)
    browser.wait_for("window.dive && dive.spriteReady", timeout=10)
    assert browser.console_errors() == []
    before = browser.screenshot(tmp_path / "dive_before.png")
    assert png_pixel_std(before) > 20
    assert browser.js("return dive.layout.rowLabels.length") == 1

    # rebin rows by cluster with the panel's select, as a user would
    browser.select_option("#row-by", "cluster")
    rows = browser.js("return dive.layout.rowLabels")
    names = cluster_names(rendered.env.engine, rendered.env.run.run_id)
    assert rows == [f"{k} · {names[k]['name']}" for k in range(N_CLUSTERS)]
    assert browser.js("return document.getElementById('dive-status').textContent").startswith(f"{N_CLUSTERS} rows")
    counts = browser.js("return dive.layout.cells.map(c => c.items.length)")
    assert sum(counts) == N_PICTURES and min(counts) > 0
    # every picture of a row bin is of that cluster
    column = browser.js("const c = dive.data.columns.find(c => c.name === 'cluster');"
                        "return dive.layout.cells.map(cell => [...new Set(cell.items.map(i => c.codes[i]))])")
    assert column == [[k] for k in range(N_CLUSTERS)]
    time.sleep(0.5)  # the 350 ms transition
    after = browser.screenshot(tmp_path / "dive_by_cluster.png")
    from PIL import Image

    with Image.open(before) as a, Image.open(after) as b:
        assert np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)).mean() > 5

    # columns by split, colour by hour (a number: a colour ramp legend)
    browser.select_option("#col-by", "split")
    assert 1 < len(browser.js("return dive.layout.columnLabels")) <= 4
    browser.select_option("#color-by", "hour")
    assert browser.js("return document.querySelector('#legend .ramp') !== null")

    # hover a picture: the tooltip shows its thumbnail and fields; click keeps it in the panel
    x, y = browser.js("const r = document.getElementById('stage').getBoundingClientRect();"
                      "const i = dive.layout.cells[0].items[0]; const [x, y, s] = dive.positionOf(i);"
                      "return [r.left + x + s / 2, r.top + y + s * 0.28]")
    browser.hover(x, y)
    browser.wait_for("(() => { const i = document.querySelector('#tooltip img');"
                     " return i && !document.getElementById('tooltip').hidden && i.complete && i.naturalWidth > 0 })()",
                     timeout=10)
    first_id = browser.js("return dive.data.ids[dive.layout.cells[0].items[0]]")
    assert first_id in browser.js("return document.getElementById('tooltip').textContent")
    browser.click(x, y)
    assert first_id in browser.js("return document.getElementById('selection').textContent")

    # embedding positions: every clustered picture gets finite coordinates inside its bin
    browser.select_option("#positions", "scatter")
    assert browser.js("return Array.from(dive.layout.x).filter(Number.isFinite).length") == N_PICTURES
    assert browser.console_errors() == []


AGGREGATED = {"reports": {"scatter_aggregate_above": 1000, "scatter_sample": 300, "scatter_density_bins": [120, 90]}}


@pytest.fixture(scope="module")
def aggregated(tmp_path_factory):
    """The scatter of a 3,000-picture run above a threshold lowered to 1,000: density + 300 sampled points."""
    from iss.config import load_config
    from iss.db.engine import get_engine
    from iss.visualization.data import cache_for, get_run, load_run_frame
    from iss.visualization.reports import render_scatter
    from tests.synthetic import make_synthetic_run

    root = tmp_path_factory.mktemp("aggregated")
    cfg = load_config(mode="demo", root=root, overrides={"database": {"url": "sqlite:///iss_test.db"}, **AGGREGATED})
    engine = get_engine(cfg.database_url)
    run = make_synthetic_run(cfg, engine, n_pictures=3000, n_clusters=N_CLUSTERS)
    frame = load_run_frame(engine, run.run_id)
    yield render_scatter(cfg, get_run(engine, run.run_id), frame, cache_for(cfg))
    engine.dispose()


def test_aggregated_scatter_draws_density_hovers_and_lassoes_the_sample(browser, aggregated, tmp_path):
    browser.open(aggregated, wait_js=BOKEH_IDLE)
    assert browser.console_errors() == []
    names = browser.js("return [...Bokeh.index.all_views()].filter(v => v.model && v.model.name)"
                       ".map(v => v.model.name)")
    assert sorted(n for n in names if n.startswith("density-")) == [f"density-{k}" for k in range(N_CLUSTERS)]
    assert browser.js("return Bokeh.documents[0].get_model_by_name('cluster-0').data_source.data.x.length") < 400

    # the density images are drawn: hiding every point leaves a non-blank plot, hiding the densities too blanks it
    canvas = "[...Bokeh.index.all_views()].find(v => v.model && v.model.name === 'cluster-0').parent.canvas_view.el"
    rect = browser.js(f"const r = {canvas}.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]")

    def plot_std(name):
        from PIL import Image

        shot = browser.screenshot(tmp_path / f"{name}.png")
        with Image.open(shot) as image:
            left, top, width, height = (int(v) for v in rect)
            inner = image.convert("L").crop((left + 60, top + 60, left + width - 260, top + height - 60))
            return float(np.asarray(inner, dtype=np.float32).std())

    # points made transparent (hiding them would hide their densities too, see below)
    browser.js("Bokeh.documents[0].all_models.forEach(m => { if (m.name && m.name.startsWith('cluster-'))"
               " m.glyph.fill_alpha = 0 })")
    time.sleep(0.3)
    density_only = plot_std("density_only")
    browser.js("Bokeh.documents[0].all_models.forEach(m => { if (m.name && m.name.startsWith('density-'))"
               " m.visible = false })")
    time.sleep(0.3)
    blank = plot_std("blank")
    assert density_only > 10 and blank < density_only / 2
    browser.js("Bokeh.documents[0].all_models.forEach(m => { if (m.name && m.name.startsWith('density-'))"
               " m.visible = true })")
    # hiding a cluster (legend or checkbox) hides its density image with its points
    browser.js("Bokeh.documents[0].get_model_by_name('cluster-1').visible = false")
    browser.wait_for("!Bokeh.documents[0].get_model_by_name('density-1').visible", timeout=5)
    assert browser.js("return Bokeh.documents[0].get_model_by_name('density-0').visible")
    browser.js("Bokeh.documents[0].get_model_by_name('cluster-1').visible = true")
    browser.wait_for("Bokeh.documents[0].get_model_by_name('density-1').visible", timeout=5)
    browser.js("Bokeh.documents[0].all_models.forEach(m => { if (m.name && m.name.startsWith('cluster-'))"
               " m.glyph.fill_alpha = 0.45 })")
    time.sleep(0.3)

    # hover a sampled point: its thumbnail loads from thumbs/
    x, y = _glyph_position(browser, "cluster-1")
    browser.hover(x, y)
    assert browser.wait_for(f"({_deep_eval_js('img', TOOLTIP_THUMB_LOADED)})", timeout=10) >= 1

    # a lasso around the plot's middle selects sampled pictures: the grid shows them, as links
    left, top, width, height = rect
    cx, cy, r = left + width * 0.4, top + height * 0.5, min(width, height) * 0.35
    ring = [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 24)]
    browser.drag(ring)
    selected = browser.wait_for("Bokeh.documents[0].get_model_by_name('cluster-0').data_source.selected"
                                ".indices.length", timeout=5)
    assert 0 < selected <= 300 * 1.25
    grid = browser.wait_for(f"({_deep_eval_js('.selection-grid a.pic img', 'els => els.length')})", timeout=5)
    assert grid == min(selected, 120)
    assert browser.console_errors() == []
