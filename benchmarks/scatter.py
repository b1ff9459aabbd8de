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
Then the scatter at scale (:func:`measure_aggregate`; alone with ``--aggregate``, which merges its
keys into an existing ``scatter.json``): for ``BENCH_SCATTER_SIZES`` pictures (default
10,000, 100,000 and 1,000,000 in 8 Gaussian clusters, coordinates only: the page's size and load
do not depend on the pictures), the page written one point per picture (``plain_*``, up to
``BENCH_SCATTER_PLAIN_MAX``, default 300,000: beyond it the page is hundreds of MB) and aggregated
(``aggregate_*``: density images + the sample of ``reports.scatter_sample``): build time, page MB,
load time until bokeh is idle, and the build's peak Python memory (tracemalloc). The README's
threshold ``reports.scatter_aggregate_above`` comes from these figures.

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
        result.update(measure_aggregate())
        engine.dispose()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    write_report("scatter", result)
    return result


def synthetic_frame(n: int, n_clusters: int = 8, seed: int = 0):
    """``n`` pictures in ``n_clusters`` Gaussian blobs of uneven sizes and spreads, as the run frame's
    columns the scatter reads."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(n_clusters, 2.0))
    labels = rng.choice(n_clusters, size=n, p=weights)
    centres = rng.uniform(-10, 10, (n_clusters, 2))
    spread = rng.uniform(0.4, 1.6, n_clusters)
    xy = centres[labels] + rng.standard_normal((n, 2)) * spread[labels, None]
    return pd.DataFrame({"pictures_id": [f"p{i:07d}" for i in range(n)], "pictures_x": xy[:, 0],
                         "pictures_y": xy[:, 1], "label": labels,
                         "silhouette": rng.uniform(-0.1, 0.9, n).astype("float32")})


def _build(frame, page: Path, aggregate_above: int | None, options: dict) -> tuple[float, float]:
    """Write the scatter page; ``(seconds, peak MB of Python allocations)``."""
    import tracemalloc

    from iss.visualization.scatter import write_scatter_page

    tracemalloc.start()
    start = time.perf_counter()
    write_scatter_page(frame, page, thumb_prefix="thumbs", aggregate_above=aggregate_above,
                       sample_size=int(options["scatter_sample"]),
                       density_bins=tuple(options["scatter_density_bins"]))
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return seconds, peak


def measure_aggregate(repeats: int = 2) -> dict:
    """Plain and aggregated scatter pages at each size of ``BENCH_SCATTER_SIZES`` (see the module doc)."""
    from iss.config_schema import Reports
    from tests.browser import HeadlessChromium

    options = Reports().model_dump()
    sizes = [int(v) for v in os.environ.get("BENCH_SCATTER_SIZES", "10000,100000,1000000").split(",")]
    plain_max = int(os.environ.get("BENCH_SCATTER_PLAIN_MAX", "300000"))
    root = Path(tempfile.mkdtemp(prefix="iss-bench-aggregate-"))
    result: dict = {"aggregate_sample": int(options["scatter_sample"]),
                    "aggregate_bins": list(options["scatter_density_bins"]),
                    "aggregate_threshold": int(options["scatter_aggregate_above"]), "sizes": {}}
    try:
        with HeadlessChromium() as browser:
            for n in sizes:
                frame = synthetic_frame(n)
                row: dict = {}
                for kind, above in (("plain", None), ("aggregate", 0)):
                    if kind == "plain" and n > plain_max:
                        continue
                    page = root / f"{kind}_{n}.html"
                    build_s, peak_mb = _build(frame, page, above, options)
                    loads = [browser.open(page, wait_js=BOKEH_IDLE, timeout=120) for _ in range(repeats)]
                    errors = browser.console_errors()
                    row.update({f"{kind}_build_s": round(build_s, 2), f"{kind}_page_mb": round(_mb([page]), 2),
                                f"{kind}_load_s": round(statistics.median(loads), 2),
                                f"{kind}_build_peak_mb": round(peak_mb, 1), f"{kind}_console_errors": len(errors)})
                    print(f"{n:>9,} pictures {kind:>9}: build {build_s:6.2f} s (peak {peak_mb:7.1f} MB), page "
                          f"{row[f'{kind}_page_mb']:7.2f} MB, load {row[f'{kind}_load_s']:6.2f} s, "
                          f"console errors {len(errors)}", flush=True)
                    page.unlink()
                result["sizes"][str(n)] = row
    finally:
        shutil.rmtree(root, ignore_errors=True)
    big = result["sizes"].get("1000000")
    if big:
        result.update({k: big[k] for k in ("aggregate_page_mb", "aggregate_build_s", "aggregate_load_s",
                                           "aggregate_build_peak_mb")})
    return result


if __name__ == "__main__":
    import json
    import sys

    if "--aggregate" in sys.argv[1:]:
        from benchmarks.common import BENCH_DIR

        existing = BENCH_DIR / "scatter.json"
        merged = json.loads(existing.read_text()) if existing.is_file() else {}
        merged.update(measure_aggregate())
        write_report("scatter", merged)
    else:
        main()
