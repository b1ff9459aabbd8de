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
import json
import logging
import time
from pathlib import Path

import numpy as np
from markupsafe import Markup

from iss.artefacts import write_text
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
from iss.visualization.figures import METHOD_TITLES, run_projection, write_projection_figures
from iss.visualization.mosaics import write_cluster_mosaics, write_overview_mosaic
from iss.visualization.pages import render_page
from iss.visualization.scatter import scatter_sample, write_scatter_page
from iss.visualization.silhouettes import plot_silhouettes
from iss.visualization.style import cluster_color, cluster_name, shown_names

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


def run_embedding(cfg, run: dict, frame) -> dict[str, np.ndarray]:
    """``{method: xy}`` when the run's stored coordinates are a projection of the latents the
    figures read (:func:`iss.visualization.figures.run_projection`), so it is not fitted twice."""
    from iss.clustering.registry import latents_path

    params = run.get("params") or {}
    method = run_projection(run["clustering_type"], params.get("estimator") or {})
    same_latents = params.get("latents") == str(latents_path(cfg, run["model_type"], run["model_name"]))
    if method is None or not same_latents:
        return {}
    return {method: frame[["pictures_x", "pictures_y"]].to_numpy(dtype=float)}


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return "default" if value is None else str(value)


def _as_mapping(value) -> dict:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


# --- metrics and parameters in words ------------------------------------------------------------
# key -> (name, one line on what it measures); the sources are scikit-learn's metric docs.
METRICS = {
    "n_clusters": ("Clusters", "groups the method found"),
    "silhouette": ("Silhouette", "how much closer each picture is to its own cluster than to the nearest other one, "
                                 "-1 to 1 (mean over pictures); above 0.5 is well separated, near 0 is overlapping"),
    "davies_bouldin": ("Davies-Bouldin index", "how alike each cluster is to its most alike neighbour "
                                               "(size over distance); lower is better, 0 is best"),
    "calinski_harabasz": ("Calinski-Harabasz score", "spread between the clusters over spread within them; higher "
                                                     "is better, compare only on the same pictures"),
    "acc": ("Accuracy (ACC)", "share of pictures whose cluster is their known kind, after the best one-to-one "
                              "matching of clusters to kinds; 1 is perfect"),
    "nmi": ("Normalized mutual information (NMI)", "how much the cluster tells about the known kind, 0 (nothing) "
                                                   "to 1 (everything)"),
    "ari": ("Adjusted Rand index (ARI)", "how often pairs of pictures are grouped as their known kinds group them, "
                                         "corrected for chance: 0 is random, 1 is identical"),
    "noise_fraction": ("Noise", "share of pictures left out of every cluster (label -1)"),
    "n_samples": ("Pictures", "pictures clustered"),
    "n_labelled": ("Pictures of known kind", "used only to score the run (ACC, NMI, ARI), never to cluster"),
    "space": ("Scored in", "the space silhouette and the other scores are measured in (e.g. umap-2d: the 2-D "
                           "UMAP embedding the clusters were found in)"),
}
# an estimator parameter is listed only when the method used it (keys: scikit-learn-style get_params)
PARAMETER_USED = {
    "k_range": lambda p: p.get("n_clusters") == "auto",
    "scan_neighbors": lambda p: p.get("method") == "scan",
    "entropy_weight": lambda p: p.get("method") == "scan",
    "covariance_type": lambda p: p.get("method") == "gmm",
    "plot": lambda p: "n_components" not in p or (p.get("n_components") or 2) > 2,
    "perplexity": lambda p: p.get("plot") == "tsne",
}


def metric_rows(metrics) -> list[tuple[str, str, str]]:
    """``(name, value, explanation)`` for the run page, in a fixed order; per-cluster figures and
    unknown keys are left to the clusters table."""
    metrics = _as_mapping(metrics)
    rows = []
    for key, (name, explanation) in METRICS.items():
        value = metrics.get(key)
        if value is None:
            continue
        if key == "noise_fraction" and not value:
            continue
        text = f"{value:.1%}" if key == "noise_fraction" else (
            f"{value:,}" if isinstance(value, int) else _fmt(value))
        if key == "silhouette" and metrics.get("silhouette_exact") is False:
            explanation += " (on a sample of the pictures)"
        rows.append((name, text, explanation))
    sweep = metrics.get("k_sweep")
    if isinstance(sweep, dict) and sweep:
        criterion = metrics.get("k_criterion", "silhouette")
        score = "Silhouette" if criterion == "silhouette" else "Modularity"
        rows.append((f"{score} by k", ", ".join(f"{k}: {_fmt(v)}" for k, v in sweep.items()),
                     metrics.get("k_reason") or f"the automatic number of clusters tried each k in the range "
                     f"and kept k = {metrics.get('n_clusters')} ({criterion})"))
    stability = metrics.get("k_stability")
    if isinstance(stability, dict) and stability:
        rows.append(("Stability by k", ", ".join(f"{k}: {_fmt(v)}" for k, v in stability.items()),
                     "mean adjusted Rand index between clusterings of resampled pictures on re-seeded layouts"))
    timings = _as_mapping(metrics.get("timings"))
    if timings:
        rows.append(("Time", ", ".join(f"{k.removesuffix('_s').replace('_', ' ')} {v:.1f} s"
                                       for k, v in timings.items() if isinstance(v, (int, float))),
                     "seconds spent in each part of the run"))
    return rows


def parameter_rows(params) -> list[tuple[str, str]]:
    """``(name, value)`` of the parameters the run's method actually used."""
    params = _as_mapping(params)
    estimator = _as_mapping(params.get("estimator"))
    if not estimator:  # a run recorded without an estimator section: every key it has
        return [(k, _fmt(v)) for k, v in sorted(params.items())]
    rows = [(key, _fmt(value)) for key, value in estimator.items()
            if PARAMETER_USED.get(key, lambda p: True)(estimator)]
    if params.get("n_fitted") is not None and params.get("n_pictures") is not None:
        fitted = (f"all {params['n_pictures']:,} pictures" if params["n_fitted"] == params["n_pictures"] else
                  f"{params['n_fitted']:,} of {params['n_pictures']:,} pictures, the rest predicted")
        rows.append(("fitted on", fitted))
    if params.get("latent_dim") is not None:
        rows.append(("latent dimensions", f"{params['latent_dim']:,}"))
    return rows


def explorer_base(cfg) -> str:
    """URL of the explorer server (``iss serve``) that static pages link picture pages to when opened as
    files: ``http://<search.host>:<search.port>``."""
    host = str(cfg.get("search.host"))
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{int(cfg.get('search.port'))}"


def explorer_script(cfg) -> Markup:
    """The ``<script>`` giving ``window.issExplorer(path)``: the URL of a server page (``/pictures/<id>``).

    Pages served by the explorer itself (under ``/reports/``) link on the same origin; pages opened
    as files or from another server link to :func:`explorer_base`. ``<a data-explorer="/path">``
    links get their ``href`` from it (``templates/explorer_script.html``)."""
    return Markup(render_page("explorer_script.html", explorer_base=explorer_base(cfg)))


def _write(path: Path, text: str) -> Path:
    return write_text(path, text)


def facets_pages(reports_root: Path) -> list[dict]:
    """The facets pages the run pages and the index link: ``href``, ``text``, ``desc`` and whether ``built``."""
    return [{"href": href, "text": text, "desc": desc, "built": (reports_root / href).exists()}
            for href, text, desc in FACETS_PAGES]


def run_figures(run_dir: Path) -> dict:
    """The figures already written in a run's folder, as paths relative to it (what the run page shows)."""
    figures: dict = {}
    for key in ("overview", "silhouettes", "dendrogram", *(f"projection_{m}" for m in METHOD_TITLES)):
        if (run_dir / f"{key}.png").is_file():
            figures[key] = f"{key}.png"
    mosaics = {}
    for path in sorted((run_dir / "mosaics").glob("cluster_*.png")):
        tail = path.stem.removeprefix("cluster_")
        label = -1 if tail == "noise" else int(tail) if tail.lstrip("-").isdigit() else None
        if label is not None:
            mosaics[label] = f"mosaics/{path.name}"
    figures["mosaics"] = mosaics
    return figures


def write_run_page(cfg, engine, run_id: int | None = None, notes: list[str] | None = None) -> Path:
    """Write ``<run folder>/index.html`` from the database and the figures in the run's folder.

    It can be written at any time: after the figures (``render_run_reports``), after the explorer
    pages (``build_facets`` rewrites it so its links are live) or after a cluster was renamed.

    Returns
    -------
    Path
    """
    from iss.clustering.names import cluster_names

    run = get_run(engine, run_id)
    frame = load_run_frame(engine, run["run_id"])
    names = cluster_names(engine, run["run_id"])
    reports_root = cfg.path("reports")
    run_dir = reports_root / run_folder_name(run)
    figures = run_figures(run_dir)
    summary = cluster_summary(frame)
    mean_sil = frame["silhouette"].mean()
    cards = [("pictures", f"{len(frame):,}"), ("clusters", f"{len(summary)}"),
             ("mean silhouette", f"{mean_sil:.3f}" if mean_sil == mean_sil else "n/a"),
             ("model", f"{run['model_type']}/{run['model_name']}"),
             ("created", str(run["created_at"])[:19])]
    clusters = []
    for item in summary.itertuples():
        label = int(item.label)
        info = names.get(label, {})
        clusters.append({"label": label, "color": cluster_color(label),
                         "name": cluster_name(label, {label: info.get("name")}),
                         "auto_name": info["auto_name"] if info.get("given") else None,
                         "count": f"{item.count:,}", "share": f"{item.share:.1%}",
                         "silhouette": (f"{item.mean_silhouette:.3f}" if item.mean_silhouette == item.mean_silhouette
                                        else "n/a"),
                         "mosaic": figures["mosaics"].get(label)})
    shown = shown_names(names)
    page = render_page(
        "run.html", title=run_title(run), run_id=run["run_id"], explorer_base=explorer_base(cfg),
        nav=[("../index.html", "All runs"), ("scatter.html", "Scatter"), ("../facets_dive.html", "Dive"),
             ("../facets_overview.html", "Overview"), (f"explorer:/clusters/{run['run_id']}", "Explorer")],
        cards=cards, clusters=clusters, figures=figures,
        facets=facets_pages(reports_root),
        projections=[(f"projection_{m}", title) for m, title in METHOD_TITLES.items()
                     if f"projection_{m}" in figures],
        mosaics=[(src, cluster_name(label, shown)) for label, src in sorted(figures["mosaics"].items())],
        metrics=metric_rows(run.get("metrics")), parameters=parameter_rows(run.get("params")),
        notes=notes or [], written=f"{dt.datetime.now():%Y-%m-%d %H:%M}")
    return _write(run_dir / "index.html", page)


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
    runs = []
    for run in reversed(list_runs(engine)):
        folder = run_folder_name(run)
        metrics = run.get("metrics") or {}
        if isinstance(metrics, str):
            metrics = json.loads(metrics)
        sil = metrics.get("silhouette") if isinstance(metrics, dict) else None
        runs.append({"run_id": run["run_id"], "title": run_title(run), "n_clusters": run["n_clusters"],
                     "href": f"{folder}/index.html" if (reports_root / folder / "index.html").exists() else None,
                     "silhouette": _fmt(sil) if sil is not None else "",
                     "created": str(run["created_at"])[:19]})
    page = render_page("runs.html", title="Smart ISS Posts · reports", runs=runs,
                       nav=[("facets_overview.html", "Overview"), ("facets_dive.html", "Dive")],
                       facets=facets_pages(reports_root))
    return _write(reports_root / "index.html", page)


def render_scatter(cfg, run: dict, frame, cache, names: dict | None = None) -> Path:
    """Write the run's ``scatter.html`` and the thumbnails it shows (``paths.reports/thumbs/``).

    ``names``: ``{label: name}`` for the legend and the tooltips. Above
    ``reports.scatter_aggregate_above`` pictures the page draws density images and only
    ``reports.scatter_sample`` pictures as points (:func:`iss.visualization.scatter.scatter_sample`):
    only their thumbnails are written, so the reports of a million frames do not write a million files."""
    options = cfg.section("reports")
    reports_root = cfg.path("reports")
    aggregate = {"aggregate_above": int(options["scatter_aggregate_above"]),
                 "sample_size": int(options["scatter_sample"]),
                 "density_bins": tuple(int(v) for v in options["scatter_density_bins"]),
                 "random_state": int(options["random_state"])}
    thumb_prefix = None
    if options["scatter_thumbs"]:
        shown = scatter_sample(frame, **{k: aggregate[k] for k in ("aggregate_above", "sample_size", "random_state")})
        ids = (frame if shown is None else shown)["pictures_id"].astype(str).tolist()
        written = write_thumbnails(cache, ids, reports_root / THUMBS_FOLDER, quality=int(options["thumb_quality"]))
        log.info("run %s: %d new thumbnails in %s", run["run_id"], written, reports_root / THUMBS_FOLDER)
        thumb_prefix = f"../{THUMBS_FOLDER}"
    return write_scatter_page(frame, reports_root / run_folder_name(run) / "scatter.html",
                              title=f"{run_title(run)} · {len(frame):,} pictures", thumb_prefix=thumb_prefix,
                              x_label=f"{run['clustering_type']} x", y_label=f"{run['clustering_type']} y",
                              names=names, explorer=explorer_base(cfg), **aggregate)


def write_name_figures(cfg, frame, cache, run_dir: Path, names: dict) -> None:
    """The figures that show cluster names: one mosaic per cluster and the overview mosaic."""
    options = cfg.section("reports")
    write_cluster_mosaics(frame, cache, run_dir / "mosaics", size=int(options["mosaic_size"]),
                          columns=int(options["mosaic_columns"]), names=names)
    write_overview_mosaic(frame, cache, run_dir / "overview.png", per_cluster=int(options["overview_per_cluster"]),
                          names=names)


def refresh_cluster_names(cfg, engine, run_id: int) -> list[Path]:
    """Re-write every page and figure that shows a run's cluster names (after a rename): the scatter,
    the mosaics, the run page and, when it exists, the dive. The slow figures (projections,
    silhouettes) are kept.

    Returns
    -------
    list of Path
        The pages written.
    """
    from iss.clustering.names import cluster_names

    run = get_run(engine, run_id)
    frame = load_run_frame(engine, run["run_id"])
    cache = cache_for(cfg)
    names = shown_names(cluster_names(engine, run["run_id"]))
    run_dir = cfg.path("reports") / run_folder_name(run)
    written = [render_scatter(cfg, run, frame, cache, names)]
    write_name_figures(cfg, frame, cache, run_dir, names)
    if (cfg.path("reports") / FACETS_PAGES[1][0]).exists():
        from iss.visualization.facets import build_facets

        written += build_facets(cfg, engine)[:2]  # it rewrites the run pages too
    else:
        written.append(write_run_page(cfg, engine, run["run_id"]))
    return written


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
    from iss.clustering.names import ensure_cluster_names

    names = shown_names(ensure_cluster_names(cache, engine, run["run_id"]))
    notes: list[str] = []
    timings = {}

    start = time.perf_counter()
    render_scatter(cfg, run, frame, cache, names)
    timings["scatter"] = time.perf_counter() - start

    start = time.perf_counter()
    plot_silhouettes(frame["label"].to_numpy(), frame["silhouette"].to_numpy(), run_dir / "silhouettes.png",
                     title=run_title(run))
    write_name_figures(cfg, frame, cache, run_dir, names)
    timings["silhouettes_mosaics"] = time.perf_counter() - start

    start = time.perf_counter()
    linkage = load_run_linkage(run)
    if linkage is not None:
        plot_dendrogram(linkage, run_dir / "dendrogram.png", n_clusters=run.get("n_clusters"),
                        title=f"{run_title(run)} · merge tree")
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
            write_projection_figures(latents, frame["label"].to_numpy(), run_dir, methods=methods,
                                     sample=int(options["projection_sample"]), random_state=int(options["random_state"]),
                                     precomputed=run_embedding(cfg, run, frame))
    timings["projections"] = time.perf_counter() - start

    index = write_run_page(cfg, engine, run["run_id"], notes)
    write_reports_index(cfg, engine)
    log.info("run %s reports in %s (%s)", run["run_id"], run_dir,
             ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    return index
