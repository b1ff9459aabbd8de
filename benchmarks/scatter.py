"""Size and load time of the interactive scatter (and the facets dive) for 14,000 pictures.

    python -m benchmarks.scatter                  # BENCH_SCATTER_N=14000 pictures by default
    BENCH_SCATTER_N=2000 python -m benchmarks.scatter

Builds a synthetic clustering run of ``n`` pictures (database rows, an ingest cache whose
96x54 thumbnails have photographic JPEG entropy, latents) in a temporary root with
:func:`tests.synthetic.make_synthetic_run`, renders the run's scatter page exactly as
the reports step does (:func:`iss.visualization.reports.render_scatter`), then opens it in headless
Chromium (Debian's chromium + chromium-driver) ``BENCH_SCATTER_REPEATS`` times (default 3):

- ``html_mb``: the page plus every thumbnail it can show (limit: 50 MB);
- ``load_s``: median time from navigation start until bokeh's document is rendered and idle
  (``Bokeh.documents[0].is_idle``), read with the Performance API (limit: 5 s); ``load_s_max`` too.

It then builds the facets pages for the same pictures and measures the dive the same way
(``dive_mb``: page + sprite atlas; ``dive_load_s``: until the sprite is drawn; ``dive_rebin_ms``:
in-page time to lay out and redraw every picture binned by cluster).
Writes ``reports/bench/scatter.json``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import write_report

LIMIT_MB, LIMIT_S = 50.0, 5.0
BOKEH_IDLE = "typeof Bokeh !== 'undefined' && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle"


def _mb(paths) -> float:
    return sum(p.stat().st_size for p in paths) / 1e6


def measure_scatter(browser, page: Path, repeats: int) -> dict:
    """Load times (s) of the scatter page, each from navigation start until bokeh is idle."""
    loads = [browser.open(page, wait_js=BOKEH_IDLE, timeout=60) for _ in range(repeats)]
    return {"loads": loads, "errors": browser.console_errors()}


def main() -> dict:
    from iss.config import load_config
    from iss.db.engine import get_engine
    from tests.browser import HeadlessChromium
    from iss.visualization.data import cache_for, get_run, load_run_frame
    from iss.visualization.facets import build_facets
    from iss.visualization.reports import THUMBS_FOLDER, render_scatter
    from tests.synthetic import make_synthetic_run

    n = int(os.environ.get("BENCH_SCATTER_N", "14000"))
    repeats = max(1, int(os.environ.get("BENCH_SCATTER_REPEATS", "3")))
    root = Path(tempfile.mkdtemp(prefix="iss-bench-scatter-"))
    try:
        cfg = load_config(mode="demo", root=root, overrides={"database": {"url": "sqlite:///bench.db"}})
        engine = get_engine(cfg.database_url)
        start = time.perf_counter()
        run = make_synthetic_run(cfg, engine, n_pictures=n, n_clusters=8)
        print(f"synthetic run of {n:,} pictures in {time.perf_counter() - start:.1f} s ({root})", flush=True)

        start = time.perf_counter()
        frame = load_run_frame(engine, run.run_id)
        page = render_scatter(cfg, get_run(engine, run.run_id), frame, cache_for(cfg))
        render_s = time.perf_counter() - start
        thumbs = list((cfg.path("reports") / THUMBS_FOLDER).glob("*.jpg"))
        html_only, thumbs_mb = _mb([page]), _mb(thumbs)
        total = html_only + thumbs_mb
        print(f"scatter page written in {render_s:.1f} s: html {html_only:.2f} MB + {len(thumbs):,} thumbnails "
              f"{thumbs_mb:.2f} MB = {total:.2f} MB ({total / LIMIT_MB:.0%} of the {LIMIT_MB:.0f} MB limit)",
              flush=True)

        start = time.perf_counter()
        overview, dive, sprite = build_facets(cfg, engine)
        facets_s = time.perf_counter() - start
        dive_mb = _mb([dive, sprite])

        with HeadlessChromium() as browser:
            scatter = measure_scatter(browser, page, repeats)
            dive_loads = [browser.open(dive, wait_js="window.dive && dive.spriteReady", timeout=60)
                          for _ in range(repeats)]
            dive_errors = browser.console_errors()
            rebin_ms = browser.js("const t = performance.now(); dive.set({row: 'cluster'});"
                                  "return performance.now() - t")
        load_s = statistics.median(scatter["loads"])
        print(f"scatter load (navigation start -> bokeh idle): {', '.join(f'{s:.2f}' for s in scatter['loads'])} s; "
              f"median {load_s:.2f} s ({load_s / LIMIT_S:.0%} of the {LIMIT_S:.0f} s limit); "
              f"console errors: {len(scatter['errors'])}")
        print(f"facets built in {facets_s:.1f} s; dive page + sprite {dive_mb:.2f} MB; load (-> sprite ready) "
              f"{', '.join(f'{s:.2f}' for s in dive_loads)} s; rebin by cluster {rebin_ms:.0f} ms; "
              f"console errors: {len(dive_errors)}")
        result = {
            "n_pictures": n,
            "html_mb": round(total, 3),
            "html_only_mb": round(html_only, 3),
            "thumbs_mb": round(thumbs_mb, 3),
            "load_s": round(load_s, 3),
            "load_s_max": round(max(scatter["loads"]), 3),
            "render_s": round(render_s, 2),
            "limit_mb": LIMIT_MB,
            "limit_s": LIMIT_S,
            "within_limits": bool(total < LIMIT_MB and max(scatter["loads"]) < LIMIT_S),
            "console_errors": len(scatter["errors"]) + len(dive_errors),
            "dive_mb": round(dive_mb, 3),
            "dive_load_s": round(statistics.median(dive_loads), 3),
            "dive_rebin_ms": round(rebin_ms, 1),
            "facets_build_s": round(facets_s, 2),
            "load_average": round(os.getloadavg()[0], 2),
        }
        engine.dispose()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    write_report("scatter", result)
    return result


if __name__ == "__main__":
    main()
