"""A clustering run's reports, gathered under one ``index.html``, and the index of all runs.

Reads: ``clustering_runs`` and ``pictures_embedding`` (+ ``pictures``, ``pictures_location``,
``splits``) from the database, thumbnails from the ingest cache (``paths.cache``), the run's latents
(``paths.latents``) and its fitted clustering (``clustering_runs.path``, for the dendrogram).

Writes, under ``paths.reports``::

    index.html                      every run, and the facets pages
    thumbs/<id>.jpg                 96x54 JPEG thumbnails shared by all scatter pages
    run-<id>-<type>-<model>-v<version>/
        index.html                  parameters, metrics, clusters, every figure and page
        scatter.html                interactive bokeh scatter (thumbnail on hover)
        silhouettes.png             silhouette profile + mean per cluster
        overview.png                the most typical pictures of every cluster
        mosaics/cluster_<k>.png     one mosaic per cluster, most typical first
        dendrogram.png              hierarchical clusterings only (classical)
        projection_{pca,tsne,umap}.png
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import time
from pathlib import Path

import numpy as np

from iss.visualization.data import (
    ReportError,
    cache_for,
    cluster_summary,
    get_run,
    list_runs,
    load_run_frame,
    run_folder_name,
    write_thumbnails,
)
from iss.visualization.dendrogram import load_run_linkage, plot_dendrogram
from iss.visualization.figures import METHOD_TITLES, write_projection_figures
from iss.visualization.mosaics import write_cluster_mosaics, write_overview_mosaic
from iss.visualization.scatter import write_scatter_page
from iss.visualization.silhouettes import plot_silhouettes
from iss.visualization.style import PAGE_CSS, cluster_color, cluster_name

log = logging.getLogger(__name__)

THUMBS_FOLDER = "thumbs"
FACETS_PAGES = (("facets_overview.html", "Facets overview", "statistics of every column"),
                ("facets_dive.html", "Facets dive", "every picture, binned and coloured by any column"))


def run_title(run: dict) -> str:
    """``"Run 3 · n2d v1 on simple_conv/demo"``."""
    return (f"Run {run['run_id']} · {run['clustering_type']} v{run['clustering_version']} "
            f"on {run['model_type']}/{run['model_name']}")


def load_run_latents(cfg, run: dict, ids: list[str]) -> np.ndarray | None:
    """The features of ``ids`` (rows in that order) the run clustered, or None if they are gone.

    Read with :func:`iss.features.features_of_run` (the autoencoder's latents or the pixel / auto
    features the run recorded; no TensorFlow).
    """
    from iss.features import features_of_run

    try:
        found = features_of_run(cfg, run)
        latent_ids, latents = found.ids, found.values
    except (FileNotFoundError, ValueError) as exc:
        log.warning("run %s: %s; skipping the projections", run["run_id"], exc)
        return None
    row_of = {str(i): k for k, i in enumerate(latent_ids)}
    missing = [i for i in ids if i not in row_of]
    if missing:
        log.warning("%d pictures of run %s have no latents (e.g. %s); skipping the projections",
                    len(missing), run["run_id"], missing[0])
        return None
    return np.asarray(latents)[[row_of[i] for i in ids]].reshape(len(ids), -1)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _flatten(prefix: str, value, out: list) -> None:
    if isinstance(value, dict) and value:
        for key in sorted(value):
            _flatten(f"{prefix}.{key}" if prefix else str(key), value[key], out)
    else:
        out.append((prefix, value))


def _key_value_table(mapping) -> str:
    if not mapping:
        return "<p class='muted'>none recorded</p>"
    if isinstance(mapping, str):
        try:
            mapping = json.loads(mapping)
        except ValueError:
            return f"<p>{html.escape(mapping)}</p>"
    rows: list = []
    _flatten("", mapping, rows)
    body = "".join(f"<tr><td><code>{html.escape(k)}</code></td><td class='num'>{html.escape(_fmt(v))}</td></tr>"
                   for k, v in rows)
    return f"<table>{body}</table>"


def _page(title: str, nav: list[tuple[str, str]], body: str) -> str:
    links = "".join(f"<a href='{html.escape(href)}'>{html.escape(text)}</a>" for href, text in nav)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{PAGE_CSS}"
            "figure { margin:0 0 16px; } figure.card { display:inline-block; max-width:100%; }"
            ".figs img { display:block; max-width:100%; border-radius:4px; background:#fff; }"
            ".grid { display:grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap:16px; }"
            ".grid.wide { grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); }"
            ".grid figure.card { display:block; margin:0; }"
            ".stats { display:flex; gap:12px; flex-wrap:wrap; } .stats .card { min-width:150px; }"
            ".stats b { display:block; font-size:22px; }"
            f"</style></head><body><header class='top'><h1>{html.escape(title)}</h1><nav>{links}</nav></header>"
            f"<main>{body}</main></body></html>")


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def render_run_index(cfg, run: dict, frame, figures: dict, notes: list[str]) -> Path:
    """Write ``<run folder>/index.html`` for figures already written (paths relative to it)."""
    run_dir = cfg.path("reports") / run_folder_name(run)
    summary = cluster_summary(frame)
    reports_root = cfg.path("reports")
    mean_sil = frame["silhouette"].mean()
    cards = [("pictures", f"{len(frame):,}"), ("clusters", f"{len(summary)}"),
             ("mean silhouette", f"{mean_sil:.3f}" if mean_sil == mean_sil else "n/a"),
             ("model", f"{run['model_type']}/{run['model_name']}"),
             ("created", str(run["created_at"])[:19])]
    body = ["<div class='stats'>" + "".join(f"<div class='card'><span class='muted'>{html.escape(k)}</span>"
                                             f"<b>{html.escape(v)}</b></div>" for k, v in cards) + "</div>"]

    pages = [("scatter.html", "Interactive scatter", "every picture at its embedding coordinates; "
              "thumbnail on hover, clusters shown or hidden with the legend or the checkboxes")]
    page_items = "".join(f"<li><a href='{href}'><b>{text}</b></a> — {desc}</li>" for href, text, desc in pages)
    facet_items = "".join(
        f"<li><a href='../{href}'><b>{text}</b></a> — {desc}"
        + ("" if (reports_root / href).exists() else " <span class='muted'>(not built yet: run "
                                                      "<code>make facets</code>)</span>") + "</li>"
        for href, text, desc in FACETS_PAGES)
    body.append(f"<h2>Pages</h2><ul>{page_items}{facet_items}</ul>")

    rows = []
    for item in summary.itertuples():
        mosaic = figures.get("mosaics", {}).get(int(item.label))
        link = f"<a href='{html.escape(mosaic)}'>mosaic</a>" if mosaic else ""
        sil = f"{item.mean_silhouette:.3f}" if item.mean_silhouette == item.mean_silhouette else "n/a"
        rows.append(f"<tr><td><span class='swatch' style='background:{cluster_color(item.label)}'></span>"
                    f"{html.escape(cluster_name(item.label))}</td><td class='num'>{item.count:,}</td>"
                    f"<td class='num'>{item.share:.1%}</td><td class='num'>{sil}</td><td>{link}</td></tr>")
    body.append("<h2>Clusters</h2><table><tr><th>cluster</th><th class='num'>pictures</th><th class='num'>share</th>"
                "<th class='num'>mean silhouette</th><th></th></tr>" + "".join(rows) + "</table>")

    def figure(key: str, caption: str) -> str:
        src = figures.get(key)
        return (f"<figure class='card'><a href='{html.escape(src)}'><img src='{html.escape(src)}' alt='{caption}' "
                f"loading='lazy'></a><figcaption class='muted'>{caption}</figcaption></figure>") if src else ""

    body.append("<h2>At a glance</h2><div class='figs'>"
                + figure("overview", "The most typical pictures of each cluster (highest silhouette first)")
                + "</div>")
    quality = figure("silhouettes", "Silhouettes: per picture (left) and mean per cluster (right)") + \
        figure("dendrogram", "Dendrogram of the hierarchical merge, cut at the run's clusters")
    body.append(f"<h2>Cluster quality</h2><div class='figs'>{quality}</div>")
    projections = "".join(figure(f"projection_{m}", f"{METHOD_TITLES[m]} projection of the latents")
                          for m in METHOD_TITLES)
    if projections:
        body.append(f"<h2>Projections of the latents</h2><div class='figs grid'>{projections}</div>")
    mosaics = "".join(f"<figure class='card'><img src='{html.escape(src)}' alt='mosaic of {cluster_name(label)}' "
                      f"loading='lazy'></figure>" for label, src in sorted(figures.get("mosaics", {}).items()))
    body.append(f"<h2>Mosaics <span class='muted'>(most typical first)</span></h2><div class='figs grid wide'>{mosaics}</div>")
    body.append(f"<h2>Parameters</h2>{_key_value_table(run.get('params'))}")
    body.append(f"<h2>Metrics</h2>{_key_value_table(run.get('metrics'))}")
    if notes:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    body.append(f"<p class='muted'>Written {dt.datetime.now():%Y-%m-%d %H:%M} by "
                f"<code>python -m iss.exec.reports --run-id {run['run_id']}</code>.</p>")
    nav = [("../index.html", "All runs"), ("scatter.html", "Scatter"), ("../facets_overview.html", "Overview"),
           ("../facets_dive.html", "Dive")]
    return _write(run_dir / "index.html", _page(run_title(run), nav, "".join(body)))


def write_favicon(reports_root: Path) -> Path:
    """A small icon at the reports' root: served pages (`make serve_reports`) get no 404 for it."""
    from PIL import Image, ImageDraw

    path = reports_root / "favicon.ico"
    if not path.exists():
        icon = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
        draw = ImageDraw.Draw(icon)
        draw.ellipse([4, 4, 60, 60], fill=(23, 33, 43, 255))  # the night side
        draw.ellipse([4, 4, 60, 60], outline=(78, 121, 167, 255), width=6)  # the lit limb
        draw.ellipse([38, 14, 50, 26], fill=(242, 142, 43, 255))  # the sun
        path.parent.mkdir(parents=True, exist_ok=True)
        icon.save(path, sizes=[(16, 16), (32, 32), (64, 64)])
    return path


def write_reports_index(cfg, engine) -> Path:
    """Write ``paths.reports/index.html``: every clustering run and the facets pages."""
    reports_root = cfg.path("reports")
    write_favicon(reports_root)
    rows = []
    for run in reversed(list_runs(engine)):
        folder = run_folder_name(run)
        has_page = (reports_root / folder / "index.html").exists()
        metrics = run.get("metrics") or {}
        if isinstance(metrics, str):
            metrics = json.loads(metrics)
        sil = metrics.get("silhouette") if isinstance(metrics, dict) else None
        name = html.escape(run_title(run))
        link = f"<a href='{folder}/index.html'>{name}</a>" if has_page else \
            f"{name} <span class='muted'>(no reports: <code>python -m iss.exec.reports --run-id {run['run_id']}</code>)</span>"
        rows.append(f"<tr><td class='num'>{run['run_id']}</td><td>{link}</td><td class='num'>{run['n_clusters']}</td>"
                    f"<td class='num'>{_fmt(sil) if sil is not None else ''}</td>"
                    f"<td>{html.escape(str(run['created_at'])[:19])}</td></tr>")
    runs_table = ("<table><tr><th class='num'>run</th><th>clustering</th><th class='num'>clusters</th>"
                  "<th class='num'>silhouette</th><th>created</th></tr>" + "".join(rows) + "</table>") if rows else \
        "<p class='muted'>No clustering run yet: <code>make exec_clustering</code>.</p>"
    facets = "".join(f"<li><a href='{href}'><b>{text}</b></a> — {desc}"
                     + ("" if (reports_root / href).exists() else
                        " <span class='muted'>(not built yet: <code>make facets</code>)</span>") + "</li>"
                     for href, text, desc in FACETS_PAGES)
    body = f"<h2>Explore the collection</h2><ul>{facets}</ul><h2>Clustering runs</h2>{runs_table}"
    nav = [("facets_overview.html", "Overview"), ("facets_dive.html", "Dive")]
    return _write(reports_root / "index.html", _page("Smart ISS Posts · reports", nav, body))


def render_scatter(cfg, run: dict, frame, cache) -> Path:
    """Write the run's ``scatter.html`` and the thumbnails it shows (``paths.reports/thumbs/``)."""
    options = cfg.section("reports")
    reports_root = cfg.path("reports")
    thumb_prefix = None
    if options["scatter_thumbs"]:
        ids = frame["pictures_id"].astype(str).tolist()
        written = write_thumbnails(cache, ids, reports_root / THUMBS_FOLDER, quality=int(options["thumb_quality"]))
        log.info("run %s: %d new thumbnails in %s", run["run_id"], written, reports_root / THUMBS_FOLDER)
        thumb_prefix = f"../{THUMBS_FOLDER}"
    return write_scatter_page(frame, reports_root / run_folder_name(run) / "scatter.html",
                              title=f"{run_title(run)} · {len(frame):,} pictures", thumb_prefix=thumb_prefix,
                              x_label=f"{run['clustering_type']} x", y_label=f"{run['clustering_type']} y")


def render_run_reports(cfg, engine, run_id: int | None = None) -> Path:
    """Render every report of a clustering run and its ``index.html``.

    Parameters
    ----------
    cfg : Config
        Uses ``paths.reports``, ``paths.cache``, ``paths.latents`` and the ``reports`` section.
    engine : Engine
    run_id : int, optional
        Default: the latest run.

    Returns
    -------
    Path
        ``paths.reports/<run folder>/index.html``.
    """
    run = get_run(engine, run_id)
    frame = load_run_frame(engine, run["run_id"])
    options = cfg.section("reports")
    reports_root = cfg.path("reports")
    run_dir = reports_root / run_folder_name(run)
    cache = cache_for(cfg)
    ids = frame["pictures_id"].astype(str).tolist()
    absent = [i for i in ids if i not in cache]
    if absent:
        raise ReportError(f"{len(absent)} pictures of run {run['run_id']} are not in the ingest cache "
                          f"{cache.root} (e.g. {absent[0]}); run `make populate_db` before the reports")
    figures: dict = {}
    notes: list[str] = []
    timings = {}

    start = time.perf_counter()
    render_scatter(cfg, run, frame, cache)
    timings["scatter"] = time.perf_counter() - start

    start = time.perf_counter()
    figures["silhouettes"] = plot_silhouettes(frame["label"].to_numpy(), frame["silhouette"].to_numpy(),
                                              run_dir / "silhouettes.png", title=run_title(run)).name
    mosaics = write_cluster_mosaics(frame, cache, run_dir / "mosaics", size=int(options["mosaic_size"]),
                                    columns=int(options["mosaic_columns"]))
    figures["mosaics"] = {label: f"mosaics/{path.name}" for label, path in mosaics.items()}
    figures["overview"] = write_overview_mosaic(frame, cache, run_dir / "overview.png",
                                                per_cluster=int(options["overview_per_cluster"])).name
    timings["silhouettes_mosaics"] = time.perf_counter() - start

    start = time.perf_counter()
    linkage = load_run_linkage(run)
    if linkage is not None:
        figures["dendrogram"] = plot_dendrogram(linkage, run_dir / "dendrogram.png", n_clusters=run.get("n_clusters"),
                                                title=f"{run_title(run)} · merge tree").name
    elif run["clustering_type"] == "classical":
        notes.append("No dendrogram: the fitted classical clustering (with its linkage_) was not found at "
                     f"{run.get('path') or '(no path recorded)'}.")
    timings["dendrogram"] = time.perf_counter() - start

    start = time.perf_counter()
    methods = list(options["projections"])
    if methods:
        latents = load_run_latents(cfg, run, ids)
        if latents is None:
            notes.append(f"No projections: the latents of {run['model_type']}/{run['model_name']} were not found "
                         f"under {cfg.path('latents')} (run `make encode`).")
        else:
            paths = write_projection_figures(latents, frame["label"].to_numpy(), run_dir, methods=methods,
                                             sample=int(options["projection_sample"]),
                                             random_state=int(options["random_state"]))
            figures.update({f"projection_{m}": p.name for m, p in paths.items()})
    timings["projections"] = time.perf_counter() - start

    index = render_run_index(cfg, run, frame, figures, notes)
    write_reports_index(cfg, engine)
    log.info("run %s reports in %s (%s)", run["run_id"], run_dir,
             ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    return index
