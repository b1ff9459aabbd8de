"""The report pages come from Jinja2 templates with autoescape: a cluster name or a location holding
markup is shown as written on the run page and the facets pages, never run; the templates ship with
the package."""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import update

from iss.clustering.names import name_cluster
from iss.config import load_config
from iss.db import schema
from iss.db.engine import get_engine
from iss.visualization.data import cache_for
from iss.visualization.facets import build_facets
from iss.visualization.reports import render_run_reports
from tests.synthetic import make_synthetic_run

from .conftest import FAST_REPORTS, N_CLUSTERS, N_PICTURES

NAME = "<script>window.pwned = 1</script> & co"
ESCAPED_NAME = "&lt;script&gt;window.pwned = 1&lt;/script&gt; &amp; co"
PLACE = "Gulf <b>of</b> & 'Bay'"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A small run whose cluster 1 is named ``NAME`` and whose first pictures are at ``PLACE``."""
    root = tmp_path_factory.mktemp("hostile")
    cfg = load_config(mode="demo", root=root, overrides={"database": {"url": "sqlite:///iss_test.db"},
                                                         **FAST_REPORTS})
    engine = get_engine(cfg.database_url)
    run = make_synthetic_run(cfg, engine, n_pictures=N_PICTURES, n_clusters=N_CLUSTERS)
    name_cluster(cache_for(cfg), engine, run.run_id, 1, NAME)
    location = schema.pictures_location
    with engine.begin() as conn:
        conn.execute(update(location).where(location.c.pictures_id.in_(run.ids[:20]))
                     .values(pictures_location_text=PLACE))
    run_page = render_run_reports(cfg, engine, run.run_id)
    overview, dive, _ = build_facets(cfg, engine)
    yield run_page, overview, dive
    engine.dispose()


def test_names_are_escaped_in_the_html(hostile):
    run_page, overview, dive = (page.read_text(encoding="utf-8") for page in hostile)
    for html in (run_page, overview):
        assert "<script>window.pwned" not in html
    assert f"<span class='cluster-name'>{ESCAPED_NAME}</span>" in run_page
    assert f"alt='mosaic of {ESCAPED_NAME}'" in run_page
    assert ESCAPED_NAME in overview and "Gulf &lt;b&gt;of&lt;/b&gt; &amp; &#39;Bay&#39;" in overview
    # the dive's data is JSON inside <script>: no "</script>" of a name may end it early
    data = re.search(r"<script id='dive-data' type='application/json'>(.*?)</script>", dive, re.S).group(1)
    assert "<" not in data
    categories = {c["name"]: c.get("categories") for c in json.loads(data)["columns"]}
    assert f"1 · {NAME}" in categories["cluster"] and PLACE in categories["location"]


@pytest.mark.browser
def test_names_show_as_written_and_never_run(browser, hostile):
    run_page, overview, dive = hostile
    browser.open(run_page)
    assert browser.js("return window.pwned === undefined")
    names = browser.js("return Array.from(document.querySelectorAll('.cluster-name')).map(e => e.textContent)")
    assert NAME in names
    browser.open(overview)
    assert browser.js("return window.pwned === undefined")
    assert NAME in browser.js("return document.body.innerText") and PLACE in browser.js(
        "return document.body.innerText")
    browser.open(dive)
    browser.wait_for("window.dive && dive.spriteReady", timeout=10)
    assert browser.js("return window.pwned === undefined")
    assert NAME in browser.js("return document.getElementById('panel').innerText")
    assert browser.console_errors() == []


def test_every_template_and_asset_is_packaged():
    """``setup.py``'s package_data covers every non-Python file the pages read from the package."""
    root = Path(__file__).resolve().parents[2]
    setup = ast.parse((root / "setup.py").read_text())
    call = next(node for node in ast.walk(setup)
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup")
    package_data = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "package_data"))
    folder = root / "iss" / "visualization"
    files = [p.relative_to(folder).as_posix() for sub in ("templates", "assets") for p in (folder / sub).iterdir()]
    assert files
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in package_data["iss.visualization"]), name
