"""Fixtures for the report tests: a small synthetic run, its rendered reports, and a headless browser.

The ``browser`` fixture is generic (open a URL or file, console errors, screenshot, run JS,
hover/click at viewport coordinates); other areas can use the same class::

    from tests.browser import HeadlessChromium
    with HeadlessChromium() as browser: ...
"""

from __future__ import annotations

import functools
import http.server
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from iss.config import load_config
from iss.db.engine import get_engine
from tests.browser import HeadlessChromium, started_or_fail
from tests.synthetic import SyntheticRun, make_synthetic_run

N_PICTURES = 60
N_CLUSTERS = 4
# reports in tests: PCA only (t-SNE/UMAP have their own, slower test in test_figures.py)
FAST_REPORTS = {"reports": {"projections": ["pca"], "mosaic_size": 16, "mosaic_columns": 4}}


@dataclass
class RunEnv:
    """A config, an engine and a synthetic run written through them."""

    cfg: object
    engine: object
    run: SyntheticRun


@pytest.fixture
def small_run(cfg, engine) -> RunEnv:
    """60 pictures in 4 clusters, on each database backend (``engine`` is parametrized)."""
    cfg = cfg.with_overrides(FAST_REPORTS)
    return RunEnv(cfg, engine, make_synthetic_run(cfg, engine, n_pictures=N_PICTURES, n_clusters=N_CLUSTERS))


@pytest.fixture
def sqlite_run(cfg) -> RunEnv:
    """The same small run, on SQLite only (rendering tests do not depend on the backend)."""
    cfg = cfg.with_overrides(FAST_REPORTS)
    engine = get_engine(cfg.database_url)
    yield RunEnv(cfg, engine, make_synthetic_run(cfg, engine, n_pictures=N_PICTURES, n_clusters=N_CLUSTERS))
    engine.dispose()


@dataclass
class Rendered:
    """Every report page of a small run, rendered once for the browser tests."""

    env: RunEnv
    run_index: Path
    scatter: Path
    overview: Path
    dive: Path
    reports_index: Path


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Rendered:
    """Render the run reports and the facets pages of a small SQLite run (once per module)."""
    from iss.visualization.facets import build_facets
    from iss.visualization.reports import render_run_reports

    root = tmp_path_factory.mktemp("rendered")
    cfg = load_config(mode="demo", root=root, overrides={"database": {"url": "sqlite:///iss_test.db"},
                                                         **FAST_REPORTS})
    engine = get_engine(cfg.database_url)
    run = make_synthetic_run(cfg, engine, n_pictures=N_PICTURES, n_clusters=N_CLUSTERS)
    index = render_run_reports(cfg, engine, run.run_id)
    overview, dive, _ = build_facets(cfg, engine)
    yield Rendered(RunEnv(cfg, engine, run), index, index.parent / "scatter.html", overview, dive,
                   cfg.path("reports") / "index.html")
    engine.dispose()


@pytest.fixture(scope="session")
def browser_session():
    """One headless Chromium for the whole session (starting one costs about a second)."""
    browser = started_or_fail()
    yield browser
    browser.close()


@pytest.fixture
def browser(browser_session) -> HeadlessChromium:
    """The session's browser on a blank page, with console messages of earlier tests dropped."""
    browser_session.driver.get("about:blank")
    browser_session.reset_console()
    return browser_session


@pytest.fixture
def http_server():
    """Start a local static server: ``url = http_server(folder)`` (127.0.0.1, any free port)."""
    servers = []

    def serve(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass
