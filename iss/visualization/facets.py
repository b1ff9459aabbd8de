"""Facets-style explorer of the whole collection: an overview of every column and a picture "dive".

The upstream Facets front end (Polymer 1 + HTML Imports) no longer runs in current Chromium, so
both pages are our own, self-contained and offline (no CDN, no server needed; `make serve_reports`
works too):

``facets_overview.html``
    Statistics of the joined ``pictures`` / ``pictures_location`` / ``splits`` /
    ``pictures_embedding`` table, column by column and compared across the train/test/valid
    splits like Facets Overview: count, missing, mean, std, zeros, min, median, max and a
    histogram for numbers and times; unique values and the most frequent ones for categories.
    Columns can be filtered by name and sorted by name, missing share or non-uniformity.
``facets_dive.html`` + ``facets_sprite.jpg``
    Every picture drawn as its sprite-atlas thumbnail on a canvas, binned into rows and columns by
    any column (cluster, run, hour, location, day/night, split...), coloured by any column,
    sorted within bins, or placed at its embedding coordinates; zoom with the wheel, drag to pan,
    hover or click a picture to see it larger with all its fields.

Reads: the database (every picture, its location and split, and the embedding of the latest or
of every clustering run, see ``reports.facets_runs``) and the ingest cache's thumbnails.
Writes: ``paths.reports/facets_overview.html``, ``facets_dive.html``, ``facets_sprite.jpg``,
``thumbs/<id>.jpg`` (shared with the scatter pages) and refreshes ``paths.reports/index.html``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from iss.artefacts import atomic_path, write_text
from iss.data.cache import ImageCache
from iss.visualization.data import (
    ReportError,
    cache_for,
    list_runs,
    load_pictures_frame,
    run_folder_name,
    thumb_url,
    write_thumbnails,
)
from iss.visualization.pages import render_page
from iss.visualization.style import _PALETTE, NOISE_COLOR, cluster_color, cluster_title, shown_names

log = logging.getLogger(__name__)

OVERVIEW_FILE, DIVE_FILE, SPRITE_FILE = "facets_overview.html", "facets_dive.html", "facets_sprite.jpg"
MAX_SPRITE_WIDTH = 8192  # pixels; browsers decode larger images but some GPUs cannot upload them
MISSING = "(missing)"
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
GROUP_COLORS = {"all": "#17212b", "train": "#4e79a7", "test": "#f28e2b", "valid": "#59a14f"}


# --- the explorer's table ---------------------------------------------------------------------------

def _run_short(run: dict) -> str:
    return f"run {run['run_id']} · {run['clustering_type']}"


def _cluster_text(label, names: dict | None = None) -> str | None:
    if pd.isna(label):
        return None
    return cluster_title(int(label), names)


def facets_table(frame: pd.DataFrame, runs: list[dict], names: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """The explorer's columns, derived from :func:`load_pictures_frame`'s frame.

    Parameters
    ----------
    frame : DataFrame
        One row per picture, with ``label_run<id>``... columns for each run of ``runs``.
    runs : list of dict
        The runs in ``frame``, oldest first; the last one's columns are called plainly
        ``cluster``, ``silhouette``, ``x``, ``y``, older ones ``cluster · run <id>``...
    names : dict, optional
        ``{run_id: {label: name}}``: clusters are shown as ``"3 · dark, city lights"``.

    Returns
    -------
    table : DataFrame
        Display-ready columns (strings for categories, floats for numbers, NaN/None when missing)
        in the same row order as ``frame``; ``id`` and ``taken_at`` included.
    meta : dict
        ``{column: {"kind": "cat" | "num" | "time" | "text", "order": "natural" | "frequency",
        "colors": {...}}}`` describing how to bin, sort and colour each column.
    """
    table = pd.DataFrame(index=frame.index)
    meta: dict[str, dict] = {}

    def add(name, values, kind, **extra):
        table[name] = values
        meta[name] = {"kind": kind, **extra}

    add("id", frame["pictures_id"].astype(str), "text")
    taken = pd.to_datetime(frame["taken_at"])
    add("taken_at", taken, "time")
    add("month", taken.dt.strftime("%Y-%m").where(taken.notna(), None), "cat", order="natural")
    add("weekday", taken.dt.dayofweek.map(lambda d: None if pd.isna(d) else WEEKDAYS[int(d)]), "cat",
        order="given", categories=WEEKDAYS)
    add("hour", taken.dt.hour.astype("float64"), "num")
    day = frame["is_day"].map(lambda v: None if pd.isna(v) else ("day" if v else "night"))
    add("day/night", day, "cat", order="given", categories=["day", "night"],
        colors={"day": "#edc948", "night": "#2f4b7c"})
    add("location", frame["location"].astype(object).where(frame["location"].notna(), None), "cat",
        order="frequency")
    add("latitude", frame["latitude"].astype("float64"), "num")
    add("longitude", frame["longitude"].astype("float64"), "num")
    add("location source", frame["location_source"].astype(object).where(frame["location_source"].notna(), None),
        "cat", order="frequency")
    add("split", frame["split"].astype(object).where(frame["split"].notna(), None), "cat", order="given",
        categories=["train", "test", "valid"], colors={k: GROUP_COLORS[k] for k in ("train", "test", "valid")})
    add("time source", frame["taken_at_source"].astype(object).where(frame["taken_at_source"].notna(), None),
        "cat", order="frequency")
    add("file size (kB)", pd.to_numeric(frame["file_size"], errors="coerce").astype("float64") / 1000.0, "num")
    add("width", pd.to_numeric(frame["width"], errors="coerce").astype("float64"), "num")
    add("height", pd.to_numeric(frame["height"], errors="coerce").astype("float64"), "num")

    # "run": the most recent run that clustered the picture (new pictures are "not clustered")
    run_of = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    for run in runs:
        run_of = run_of.where(frame[f"label_run{run['run_id']}"].isna(), _run_short(run))
    add("run", run_of.where(run_of.notna(), "not clustered"), "cat", order="natural")

    for position, run in enumerate(reversed(runs)):
        rid = run["run_id"]
        suffix = "" if position == 0 else f" · run {rid}"
        labels = frame[f"label_run{rid}"]
        run_names = (names or {}).get(rid)
        texts = labels.map(lambda v: _cluster_text(v, run_names))
        present = sorted({int(v) for v in labels.dropna()})
        add(f"cluster{suffix}", texts, "cat", order="natural",
            colors={_cluster_text(v, run_names): cluster_color(v) for v in present}, run=rid)
        add(f"silhouette{suffix}", frame[f"silhouette_run{rid}"].astype("float64"), "num", run=rid)
        add(f"x{suffix}", frame[f"x_run{rid}"].astype("float64"), "num", run=rid, axis="x")
        add(f"y{suffix}", frame[f"y_run{rid}"].astype("float64"), "num", run=rid, axis="y")
    return table, meta


# --- overview statistics ------------------------------------------------------------------------------

def _natural_key(text: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(text))]


def _non_uniformity(counts: np.ndarray) -> float:
    """0 for a flat histogram, 1 when everything falls in one bin (1 - normalised entropy)."""
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    if total == 0 or len(counts) < 2:
        return 0.0
    p = counts[counts > 0] / total
    return float(1 - (-(p * np.log(p)).sum()) / np.log(len(counts)))


def numeric_stats(values: pd.Series, edges: np.ndarray | None) -> dict:
    """count, missing share, mean, std, zeros share, min, median, max and histogram counts."""
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    known = x[~np.isnan(x)]
    n = len(x)
    stats = {"count": int(known.size), "missing": float(1 - known.size / n) if n else 0.0}
    if known.size:
        stats.update(mean=float(known.mean()), std=float(known.std(ddof=1)) if known.size > 1 else 0.0,
                     zeros=float((known == 0).mean()), min=float(known.min()), median=float(np.median(known)),
                     max=float(known.max()))
    if edges is not None and known.size:
        stats["hist"] = np.histogram(np.clip(known, edges[0], edges[-1]), bins=edges)[0].tolist()
    return stats


def categorical_stats(values: pd.Series, top: int = 8) -> dict:
    """count, missing share, unique, and the ``top`` most frequent values with their counts."""
    n = len(values)
    known = values.dropna().astype(str)
    counts = known.value_counts()
    return {"count": int(known.size), "missing": float(1 - known.size / n) if n else 0.0,
            "unique": int(counts.size), "top": [(str(k), int(v)) for k, v in counts.head(top).items()],
            "uniformity_counts": counts.to_numpy()}


def overview_statistics(table: pd.DataFrame, meta: dict, group_by: str = "split") -> dict:
    """Per column, statistics for all pictures and for each value of ``group_by``.

    Returns
    -------
    dict
        ``{"groups": [(name, n_rows)], "features": [{"name", "kind", "edges", "non_uniformity",
        "stats": {group: {...}}}]}``.
    """
    groups = [("all", table)]
    if group_by in table:
        for value in meta[group_by].get("categories", sorted(table[group_by].dropna().unique())):
            part = table[table[group_by] == value]
            if len(part):
                groups.append((str(value), part))
    features = []
    for name, info in meta.items():
        kind = info["kind"]
        if kind == "text":
            continue
        feature = {"name": name, "kind": kind}
        if kind in ("num", "time"):
            column = table[name]
            if kind == "time":
                column = pd.to_datetime(column)
                column = (column - pd.Timestamp("1970-01-01")).dt.total_seconds()
            known = column.dropna().to_numpy(dtype="float64")
            edges = None
            if known.size:
                lo, hi = float(known.min()), float(known.max())
                edges = np.linspace(lo, hi if hi > lo else lo + 1, 13)
            feature["edges"] = edges.tolist() if edges is not None else None
            feature["stats"] = {g: numeric_stats(column.loc[part.index], edges) for g, part in groups}
            feature["non_uniformity"] = _non_uniformity(feature["stats"]["all"].get("hist", []))
        else:
            feature["stats"] = {g: categorical_stats(part[name]) for g, part in groups}
            feature["non_uniformity"] = _non_uniformity(feature["stats"]["all"]["uniformity_counts"])
            for stats in feature["stats"].values():
                stats.pop("uniformity_counts")
        features.append(feature)
    return {"groups": [(g, len(part)) for g, part in groups], "features": features}


def _fmt_number(value, kind: str = "num") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if kind == "time":
        return dt.datetime.fromtimestamp(value, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    if abs(value) >= 1e5 or (value != 0 and abs(value) < 1e-3):
        return f"{value:.3g}"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"


def _histogram_bars(counts, width: int, height: int) -> list[dict]:
    """The bars of a small SVG histogram ``width`` x ``height`` (none for an empty one): ``x``, ``y``,
    ``width``, ``height`` formatted for the SVG, and ``count`` for the tooltip."""
    counts = np.asarray(counts, dtype=float)
    if counts.size == 0 or counts.max() == 0:
        return []
    bar = width / counts.size
    tall = [max(1.0, c / counts.max() * (height - 2)) for c in counts]
    return [{"x": f"{i * bar + 0.5:.1f}", "y": f"{height - h:.1f}", "width": f"{bar - 1:.1f}", "height": f"{h:.1f}",
             "count": f"{int(c):,}"} for i, (c, h) in enumerate(zip(counts, tall)) if c > 0]


def _numeric_cells(s: dict, kind: str) -> list[str]:
    """count, missing, mean, std, zeros, min, median, max of a number or time column, as shown."""
    return ([f"{s['count']:,}", f"{s['missing']:.1%}", _fmt_number(s.get("mean"), kind),
             _fmt_number(s.get("std")) if kind == "num" else "–",
             f"{s['zeros']:.1%}" if "zeros" in s and kind == "num" else "–"]
            + [_fmt_number(s.get(k), kind) for k in ("min", "median", "max")])


def render_overview_html(stats: dict, title: str, subtitle: str) -> str:
    """The overview page (``templates/facets_overview.html``; a few lines of inline JS filter and sort)."""
    return render_page("facets_overview.html", title=title, subtitle=subtitle, stats=stats, groups=stats["groups"],
                       nav=[("index.html", "All runs"), ("facets_dive.html", "Dive")],
                       group_color=lambda group: GROUP_COLORS.get(group, "#616e7c"),
                       histogram_bars=_histogram_bars, numeric_cells=_numeric_cells)


# --- dive ---------------------------------------------------------------------------------------------

def build_sprite(cache: ImageCache, ids: list[str], out_jpg: str | Path, tile: tuple[int, int] = (48, 27),
                 quality: int = 85, batch: int = 2048) -> dict:
    """One JPEG atlas with every picture's thumbnail as a ``tile`` (width, height) cell, row-major.

    Returns
    -------
    dict
        ``{"url": file name, "tile": [w, h], "columns": c, "rows": r}``; picture ``i`` is at
        ``((i % c) * w, (i // c) * h)``.
    """
    if not ids:
        raise ReportError("no picture to put in the facets sprite; run `make populate_db` first")
    tw, th = int(tile[0]), int(tile[1])
    columns = int(min(max(1, math.ceil(math.sqrt(len(ids) * th / tw))), MAX_SPRITE_WIDTH // tw))
    rows = math.ceil(len(ids) / columns)
    atlas = np.zeros((rows * th, columns * tw, 3), dtype=np.uint8)
    sh, sw = cache.thumb_shape[:2]
    for start in range(0, len(ids), batch):
        thumbs = cache.get_thumbs(ids[start:start + batch])
        if sh % th == 0 and sw % tw == 0:
            fy, fx = sh // th, sw // tw  # exact box downsampling, vectorised over the batch
            tiles = thumbs.reshape(len(thumbs), th, fy, tw, fx, 3).mean(axis=(2, 4)).round().astype(np.uint8)
        else:
            tiles = np.stack([np.asarray(Image.fromarray(t).resize((tw, th), Image.Resampling.LANCZOS))
                              for t in thumbs])
        for k, pixels in enumerate(tiles):
            r, c = divmod(start + k, columns)
            atlas[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = pixels
    out_jpg = Path(out_jpg)
    with atomic_path(out_jpg) as tmp:
        Image.fromarray(atlas).save(tmp, format="JPEG", quality=int(quality), optimize=True, progressive=True)
    return {"url": out_jpg.name, "tile": [tw, th], "columns": columns, "rows": rows}


def _category_order(values: pd.Series, info: dict) -> list[str]:
    present = values.dropna().astype(str)
    if info.get("order") == "given":
        given = [c for c in info.get("categories", []) if c in set(present)]
        return given + sorted(set(present) - set(given), key=_natural_key)
    if info.get("order") == "frequency":
        return present.value_counts().index.astype(str).tolist()
    return sorted(present.unique().tolist(), key=_natural_key)


def _round_list(values: np.ndarray, digits: int = 4) -> list:
    return [None if math.isnan(v) else round(v, digits) for v in values.tolist()]


def dive_payload(table: pd.DataFrame, meta: dict, sprite: dict, thumbs_prefix: str | None = "thumbs") -> dict:
    """The dive's data, column-oriented: categories as integer codes, numbers with ``null`` for missing."""
    columns = []
    for name, info in meta.items():
        kind = info["kind"]
        if kind == "text":
            continue
        if kind == "time":
            stamps = pd.to_datetime(table[name])
            columns.append({"name": "time", "kind": "text",
                            "values": [None if pd.isna(t) else t.strftime("%Y-%m-%d %H:%M") for t in stamps]})
            continue
        if kind == "num":
            column = {"name": name, "kind": "num", "values": _round_list(table[name].to_numpy(dtype="float64"))}
        else:
            categories = _category_order(table[name], info)
            code_of = {c: i for i, c in enumerate(categories)}
            codes = [code_of.get(str(v), -1) if v is not None and not pd.isna(v) else -1 for v in table[name]]
            palette = info.get("colors", {})
            colors = [palette.get(c, _PALETTE[i % len(_PALETTE)]) for i, c in enumerate(categories)]
            column = {"name": name, "kind": "cat", "categories": categories, "codes": codes, "colors": colors}
        for key in ("run", "axis"):
            if key in info:
                column[key] = info[key]
        columns.append(column)
    ids = table["id"].astype(str).tolist()
    return {
        "n": len(table),
        "ids": ids,
        "thumbs": [thumb_url(i, thumbs_prefix) for i in ids] if thumbs_prefix else None,
        "sprite": sprite,
        "missing_color": NOISE_COLOR,
        "columns": columns,
        "defaults": {"row": "none", "column": "none", "color": "cluster" if "cluster" in meta else "day/night",
                     "sort": "silhouette" if "silhouette" in meta else "time"},
    }


def render_dive_html(payload: dict, title: str, subtitle: str, run_page: str | None = None,
                     explorer_js: str = "") -> str:
    """The dive page (``templates/facets_dive.html``): its CSS and JS inlined from ``assets/``, the data
    embedded as JSON.

    ``run_page``: URL of the latest run's page (linked in the header); ``explorer_js``: the script
    giving picture pages' URLs (:func:`iss.visualization.reports.explorer_script`, a ``Markup``)."""
    nav = [("index.html", "All runs"), *([(run_page, "Run page")] if run_page else []),
           ("facets_overview.html", "Overview")]
    return render_page("facets_dive.html", title=title, subtitle=subtitle, nav=nav, payload=payload,
                       explorer_js=explorer_js)


def dive_sample(table: pd.DataFrame, limit: int, random_state: int = 0) -> pd.DataFrame:
    """The rows the dive shows: all of them up to ``limit``, else ``limit`` drawn at random (seeded), in
    their original order.

    The dive draws one sprite tile per picture and embeds one row of data per picture: at a million
    pictures the atlas alone would be 1.3 gigapixels (about 4 GB to build, beyond a JPEG's 65,535
    pixel side) and every thumbnail of the collection would be read and written. A uniform draw keeps
    the shares of every cluster, hour or split, which is what the dive's bins compare; the overview's
    statistics still count every row (they read no pixels).
    """
    if limit < 1:
        raise ValueError(f"reports.facets_dive_max must be at least 1, got {limit}")
    if len(table) <= limit:
        return table
    keep = np.sort(np.random.default_rng(random_state).choice(len(table), size=limit, replace=False))
    return table.iloc[keep].reset_index(drop=True)


# --- the step ---------------------------------------------------------------------------------------

def _write(path: Path, text: str) -> Path:
    return write_text(path, text)


def build_facets(cfg, engine) -> list[Path]:
    """Build the overview and dive pages of the whole collection.

    Parameters
    ----------
    cfg : Config
        Uses ``paths.reports``, ``paths.cache`` and ``reports.sprite_size``, ``reports.sprite_quality``,
        ``reports.thumb_quality``, ``reports.facets_runs`` (``latest`` or ``all``).
    engine : Engine

    Returns
    -------
    list of Path
        ``[facets_overview.html, facets_dive.html, facets_sprite.jpg]`` under ``paths.reports``.
    """
    from iss.clustering.names import ensure_cluster_names
    from iss.visualization.reports import explorer_script, write_reports_index, write_run_page  # import cycle

    options = cfg.section("reports")
    which = str(options["facets_runs"])
    if which not in ("latest", "all"):
        raise ReportError(f"reports.facets_runs is {which!r}; expected 'latest' or 'all'")
    runs = list_runs(engine)
    runs = runs if which == "all" else runs[-1:]
    frame = load_pictures_frame(engine, [r["run_id"] for r in runs])
    if frame.empty:
        raise ReportError("no picture in the database; run `make populate_db` before `make facets`")
    cache = cache_for(cfg)
    ids = frame["pictures_id"].astype(str).tolist()
    absent = [i for i in ids if i not in cache]
    if absent:
        log.warning("%d pictures are in the database but not in the ingest cache %s (e.g. %s); leaving them out",
                    len(absent), cache.root, absent[0])
        frame = frame[frame["pictures_id"].isin(set(ids) - set(absent))].reset_index(drop=True)
        ids = frame["pictures_id"].astype(str).tolist()
    names = {r["run_id"]: shown_names(ensure_cluster_names(cache, engine, r["run_id"])) for r in runs}
    table, meta = facets_table(frame, runs, names)
    reports_root = cfg.path("reports")
    reports_root.mkdir(parents=True, exist_ok=True)

    times = table["taken_at"].dropna()
    span = f"{times.min():%Y-%m-%d} to {times.max():%Y-%m-%d}" if len(times) else "no timestamps"
    run_text = ("clusters of " + ", ".join(f"run {r['run_id']} ({r['clustering_type']} on {r['model_name']})"
                                           for r in runs)) if runs else "no clustering run yet"
    subtitle = f"{len(table):,} pictures, {span}; {run_text}."

    stats = overview_statistics(table, meta)
    overview = _write(reports_root / OVERVIEW_FILE,
                      render_overview_html(stats, "Collection overview", subtitle))

    dive_table = dive_sample(table, int(options["facets_dive_max"]), int(options["random_state"]))
    if len(dive_table) < len(table):
        subtitle += (f" The dive shows {len(dive_table):,} of them, drawn at random (reports.facets_dive_max); "
                     f"the overview counts every one.")
        log.info("facets: the dive shows %d of %d pictures (reports.facets_dive_max)", len(dive_table), len(table))
    dive_ids = dive_table["id"].astype(str).tolist()
    sprite = build_sprite(cache, dive_ids, reports_root / SPRITE_FILE, tile=tuple(options["sprite_size"]),
                          quality=int(options["sprite_quality"]))
    write_thumbnails(cache, dive_ids, reports_root / "thumbs", quality=int(options["thumb_quality"]))
    payload = dive_payload(dive_table, meta, sprite, thumbs_prefix="thumbs")
    run_pages = [reports_root / run_folder_name(r) / "index.html" for r in runs]
    latest_page = f"{run_folder_name(runs[-1])}/index.html" if runs and run_pages[-1].exists() else None
    dive = _write(reports_root / DIVE_FILE, render_dive_html(payload, "Collection dive", subtitle, latest_page,
                                                             explorer_script(cfg)))
    for run, page in zip(runs, run_pages):  # written before these pages existed: link them now
        if page.exists():
            write_run_page(cfg, engine, run["run_id"])
    write_reports_index(cfg, engine)
    log.info("facets: %s, %s (%d pictures, sprite %dx%d tiles)", overview, dive, len(table),
             sprite["columns"], sprite["rows"])
    return [overview, dive, reports_root / SPRITE_FILE]
