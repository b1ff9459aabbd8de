"""The connected explorer in a real headless Chromium, on the shared real setup (generated ISS-like frames,
a trained autoencoder, a clustering run) served by the explorer server:

- a lasso drawn in the scatter shows the selected pictures as a grid; a click on one opens its picture
  page, which shows the real picture (the collection's file, not the thumbnail) and its location;
- a cluster renamed on the server's cluster page shows its name on the run page, in the scatter's
  hover and in the dive.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from iss.db import schema
from tests.browser import DEEP_QUERY_FUNCTION, png_pixel_std

pytestmark = [pytest.mark.slow, pytest.mark.browser]

BOKEH_IDLE = "typeof Bokeh !== 'undefined' && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle"
GRID_LINKS = f"({DEEP_QUERY_FUNCTION})('.selection-grid a.pic')"


@pytest.fixture(scope="module")
def run_pages(search_env):
    """The run's reports and the facets pages, rendered into the setup's reports folder (served at /reports/)."""
    from iss.visualization.data import get_run, run_folder_name
    from iss.visualization.facets import build_facets
    from iss.visualization.reports import render_run_reports

    cfg = search_env.cfg.with_overrides({"reports": {"projections": []}})
    index = render_run_reports(cfg, search_env.engine, search_env.run_id)
    build_facets(cfg, search_env.engine)
    return f"/reports/{run_folder_name(get_run(search_env.engine, search_env.run_id))}", index.parent


@pytest.fixture(scope="module")
def chromium():
    from tests.browser import started_or_fail

    browser = started_or_fail(width=1400, height=900)
    yield browser
    browser.close()


def _points(chromium, renderer: str) -> list[tuple[float, float]]:
    """Viewport coordinates of every point of a named bokeh renderer."""
    return chromium.js("""
        const view = [...Bokeh.index.all_views()].find(v => v.model && v.model.name === arguments[0]);
        const rect = view.parent.canvas_view.el.getBoundingClientRect();
        return Array.from(view.glyph.sx, (x, i) => [rect.left + x, rect.top + view.glyph.sy[i]]);
    """, renderer)


def _located(search_env) -> dict[str, str]:
    loc = schema.pictures_location
    with search_env.engine.connect() as conn:
        return dict(conn.execute(select(loc.c.pictures_id, loc.c.pictures_location_text)).all())


def test_lasso_gives_a_grid_and_a_click_opens_the_picture_page(chromium, server_url, run_pages, search_env,
                                                              tmp_path):
    folder, _ = run_pages
    chromium.open(f"{server_url}{folder}/scatter.html", wait_js=BOKEH_IDLE)
    assert chromium.console_errors() == []
    # the scatter fills the window: the plot spans most of the width and height
    width, height = chromium.js("const v = [...Bokeh.index.all_views()].find(v => v.model && v.model.name === "
                                "'cluster-0').parent.canvas_view.el.getBoundingClientRect(); return [v.width, v.height]")
    assert width > 0.55 * 1400 and height > 0.7 * chromium.js("return window.innerHeight")

    # a lasso around the densest part of cluster 0: a polygon 90 px around its median point
    points = _points(chromium, "cluster-0")
    xs, ys = sorted(p[0] for p in points), sorted(p[1] for p in points)
    cx, cy = xs[len(xs) // 2], ys[len(ys) // 2]
    lasso = [(cx - 90, cy - 90), (cx + 90, cy - 90), (cx + 90, cy + 90), (cx - 90, cy + 90), (cx - 89, cy - 85)]
    chromium.drag(lasso)
    n_links = chromium.wait_for(f"{GRID_LINKS}.length", timeout=15)
    selected = chromium.js("return Bokeh.documents[0].get_model_by_name('cluster-0').data_source.selected.indices.length")
    assert n_links == min(selected, 120) and selected >= 2
    inside = sum(abs(x - cx) < 90 and abs(y - cy) < 90 for x, y in points)
    assert selected >= inside * 0.8  # the lasso took the points inside it (of every shown cluster)
    chromium.wait_for(f"{GRID_LINKS}.every(a => a.querySelector('img').complete && "
                      "a.querySelector('img').naturalWidth > 0)", timeout=15)
    chromium.screenshot(tmp_path / "scatter_selection.png")

    # click a selected picture that has a location: its page opens with the real picture and the place
    located = _located(search_env)
    links = chromium.js(f"return {GRID_LINKS}.map(a => [a.getAttribute('href'), a.getAttribute('title')])")
    target = next(i for i, (href, _) in enumerate(links) if href.rsplit("/", 1)[1] in located)
    picture_id = links[target][0].rsplit("/", 1)[1]
    x, y = chromium.js(f"const r = {GRID_LINKS}[arguments[0]].getBoundingClientRect();"
                       "return [r.left + r.width / 2, r.top + r.height / 2]", target)
    chromium.click(x, y)
    chromium.wait_for("document.querySelector('#picture-image') !== null && "
                      "document.querySelector('#picture-image').complete", timeout=30)
    assert chromium.js("return location.pathname") == f"/pictures/{picture_id}"
    natural = chromium.js("const i = document.querySelector('#picture-image'); return [i.naturalWidth, i.naturalHeight]")
    assert natural == [640, 360]  # the collection's frame itself, not the 96x54 thumbnail
    facts = chromium.js("return document.querySelector('#facts').textContent")
    assert located[picture_id] in facts and "Latitude, longitude" in facts and "° N" in facts or "° S" in facts
    assert "Day or night" in facts and "UTC" in facts
    assert chromium.js("return document.querySelectorAll('#neighbours img').length") == 12
    assert chromium.js("return document.querySelector('#run-page-link').getAttribute('href')") == f"{folder}/index.html"
    assert png_pixel_std(chromium.screenshot(tmp_path / "picture.png")) > 10
    assert chromium.console_errors() == []


def test_a_renamed_cluster_shows_on_the_run_page_the_scatter_and_the_dive(chromium, server_url, run_pages,
                                                                         search_env):
    folder, run_dir = run_pages
    name = "Bright oceans test"
    chromium.open(f"{server_url}/clusters/{search_env.run_id}/1")
    chromium.driver.find_element("id", "name").send_keys(name)
    chromium.driver.find_element("id", "rename").click()
    chromium.wait_for("document.querySelector('#renamed') !== null", timeout=30)
    assert chromium.js("return document.querySelector('#cluster-name').textContent") == name
    # the static pages are rewritten in the background
    deadline = time.monotonic() + 90
    while name not in (run_dir / "index.html").read_text() or name not in (run_dir.parent / "facets_dive.html").read_text():
        assert time.monotonic() < deadline, "the pages were not rewritten with the new name"
        time.sleep(0.5)
    time.sleep(1)  # the last page of the refresh is written after the dive

    chromium.open(f"{server_url}{folder}/index.html")
    names = chromium.js("return Array.from(document.querySelectorAll('#clusters tr[data-label=\"1\"] .cluster-name'))"
                        ".map(e => e.textContent)")
    assert names == [name]

    chromium.open(f"{server_url}{folder}/scatter.html", wait_js=BOKEH_IDLE)
    x, y = _points(chromium, "cluster-1")[0]
    chromium.hover(x, y)
    tooltip = f"({DEEP_QUERY_FUNCTION})('.bk-Tooltip, [class*=tooltip]').map(e => e.textContent).join(' ')"
    assert f"1 · {name}" in chromium.wait_for(f"{tooltip}.includes('{name}') && {tooltip}", timeout=10)

    chromium.open(f"{server_url}/reports/facets_dive.html#row=cluster")
    chromium.wait_for("window.dive && dive.spriteReady", timeout=15)
    assert f"1 · {name}" in chromium.js("return dive.layout.rowLabels")
    chromium.js("dive.set({filter: 'cluster', value: arguments[0]})", f"1 · {name}")
    assert chromium.js("return dive.layout.nActive") == chromium.js(
        "const c = dive.data.columns.find(c => c.name === 'cluster'); return c.codes.filter(k => k === "
        "c.categories.indexOf(arguments[0])).length", f"1 · {name}")
    assert "filter=cluster" in chromium.js("return location.hash")
    assert chromium.console_errors() == []
