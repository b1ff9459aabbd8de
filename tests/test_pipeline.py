"""End to end: the whole pipeline on ~200 generated frames, on SQLite, run twice."""

import pytest
from PIL import Image
from sqlalchemy import func, select

from iss.db import schema
from iss.db.engine import get_engine
from iss.pipeline import run_pipeline, summary

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_cfg(tmp_path_factory):
    from iss.config import load_config
    root = tmp_path_factory.mktemp("pipeline")
    return load_config(mode="demo", root=root, overrides={
        "demo": {"n_frames": 200, "seed": 3},
        "training": {"epochs": 3, "batch_size": 32, "checkpoint_every": 2},
        "clustering": {"n2d": {"umap": {"n_neighbors": 10}}},
    })


def counts(url):
    engine = get_engine(url)
    with engine.connect() as conn:
        result = {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                  for t in (schema.pictures, schema.pictures_location, schema.splits, schema.models,
                            schema.clustering_runs, schema.pictures_embedding, schema.posters, schema.posters_slots)}
    engine.dispose()
    return result


def test_whole_pipeline_end_to_end_and_rerun_is_idempotent(small_cfg):
    result = run_pipeline(small_cfg, progress=False)

    rows = counts(result.database_url)
    assert rows["pictures"] == 203  # 200 frames and the 3 odd ones (demo.odd_frames)
    assert 100 <= rows["pictures_location"] <= 180  # ~70% of frames have a history line
    assert rows["splits"] == 203
    assert rows["models"] == 1 and rows["clustering_runs"] == 1
    assert rows["pictures_embedding"] == 203
    assert rows["posters"] == 1 and rows["posters_slots"] >= 1

    assert (small_cfg.path("models") / "simple_conv" / "demo" / "encoder.keras").is_file()
    assert result.report_index.is_file() and result.report_index.name == "index.html"
    html = result.report_index.read_text()
    assert "silhouette" in html.lower() and ".png" in html
    assert any(p.name.endswith(".html") for p in result.facets)
    poster = next(p for p in result.posters if p.suffix == ".jpg")
    with Image.open(poster) as image:
        assert image.size[0] >= 1000 and image.size[1] >= 1000
    assert set(result.metrics) >= {"silhouette", "ari"}
    assert "run report" in summary(result)

    # Same inputs again: every step re-runs without duplicating anything.
    again = run_pipeline(small_cfg, progress=False)
    assert counts(again.database_url) == rows
    assert again.run_id == result.run_id


def _ran(cfg):
    if not (cfg.path("reports") / "index.html").exists():  # this test run alone
        run_pipeline(cfg, progress=False)


@pytest.mark.browser
def test_run_page_explorer_links_work_after_the_pipeline(small_cfg, tmp_path):
    """The run page is written after the explorer pages: every explorer link works, opened as files."""
    from tests.browser import HeadlessChromium

    _ran(small_cfg)
    [run_page] = list(small_cfg.path("reports").glob("run-*/index.html"))
    assert "not built yet" not in run_page.read_text()
    with HeadlessChromium() as browser:
        browser.open(run_page)
        links = browser.js("return Array.from(document.querySelectorAll('a.explorer-link')).map(a => a.href)")
        assert [link.rsplit("/", 1)[1] for link in links] == ["scatter.html", "facets_overview.html",
                                                               "facets_dive.html"]
        assert browser.console_errors() == []
        for link, ready in zip(links, ("typeof Bokeh !== 'undefined' && Bokeh.documents.length > 0",
                                       "document.querySelectorAll('tbody.f').length > 10",
                                       "window.dive && dive.spriteReady")):
            browser.open(link, wait_js=ready)
            assert browser.console_errors() == [], link
            back = browser.deep_eval("a", "els => els.map(a => a.href)")  # the scatter's are in shadow roots
            assert any(h.endswith("/index.html") for h in back), link  # every page links back


def test_demo_poster_has_variety_and_equal_tiles(small_cfg):
    """The demo's poster: pictures from at least 3 clusters, no two slots near-duplicates, equal tiles."""
    import numpy as np

    from iss.posters.selection import NEAR_DUPLICATE_DISTANCE, layout, look_distance
    from iss.posters.templates import load_template
    from iss.visualization.data import cache_for

    _ran(small_cfg)
    engine = get_engine(small_cfg.database_url)
    s, e = schema.posters_slots, schema.pictures_embedding
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(select(s.c.pictures_id).where(s.c.poster_id == "demo"))]
        labels = {r[0] for r in conn.execute(select(e.c.label).where(e.c.pictures_id.in_(ids)))}
    engine.dispose()
    assert len(ids) == 16 and len(labels) >= 3
    looks = layout(cache_for(small_cfg).get_thumbs(ids))
    distances = look_distance(looks[:, None, :], looks[None, :, :])[np.triu_indices(len(ids), 1)]
    assert distances.min() >= NEAR_DUPLICATE_DISTANCE
    template = load_template(small_cfg, small_cfg.get("posters.default_template"))
    assert len({(b[2] - b[0], b[3] - b[1]) for b in map(template.picture_box, template.slots)}) == 1
