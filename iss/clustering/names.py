"""Cluster names: an automatic description of each cluster from its pictures, and the names people give.

A cluster is described by what its pictures have in common, measured on the ingest cache's
thumbnails and the locations table:

- brightness (median luminance): ``dark``, ``dim``, ``bright``;
- what the frame looks like: ``flat`` (almost no contrast: blank screens), ``city lights`` (a dark
  frame with small bright spots), ``glare`` (a bright frame with a large clipped-white area),
  ``horizon`` (a dark top over a lit bottom), else ``high contrast`` when it is;
- colour: the most common hue of the saturated pixels when they cover enough of the frames,
  else ``grey`` for lit, unsaturated frames;
- ``day`` or ``night`` when at least ``DAY_NIGHT_SHARE`` of its located pictures are;
- ``over <place>`` when at least ``PLACE_SHARE`` of its located pictures share a location text.

So a cluster of night passes over Asia reads "dark, city lights, night, over Asia". Luminance is
Rec. 601 luma; thresholds are on the 0-1 scale and were set on the demo and on real HDEV frames.

Names live in the ``cluster_names`` table (``auto_name``, and ``name`` when a person gave one,
which wins). A re-run of the same clustering version replaces its labels, so names recorded for
an older fit of the run are recomputed, and names given by hand for it are dropped (with a
warning), since label k may now hold other pictures.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter

import numpy as np
from sqlalchemy import and_, delete, select, update
from sqlalchemy.engine import Engine

from iss.db import schema
from iss.db.queries import upsert

log = logging.getLogger(__name__)

DAY_NIGHT_SHARE = 0.7  # a cluster is "night" when at least this share of its located pictures is
PLACE_SHARE = 0.4  # "over X" when at least this share of its located pictures is at X
MAX_NAME_LENGTH = 255  # the column's size
DESCRIPTION_VERSION = 3  # bump when the description rules change: automatic names are then redone
_BATCH = 2048  # thumbnails measured at once: memory bounded by the batch, not the run
# thumbnails measured per cluster at most: the medians and shares of 5,000 evenly spread pictures are
# within about a percent of the whole cluster's, and a million-picture run reads 5,000 x clusters
# thumbnails instead of all of them (the day/night and place shares still count every picture)
MAX_MEASURED = 5000
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
HUE_BINS = 24
# hue (degrees) -> colour word, the upper bound of each range
_HUES = ((15, "red"), (45, "orange"), (70, "yellow"), (160, "green"), (200, "cyan"), (255, "blue"),
         (290, "purple"), (335, "pink"), (360, "red"))


class ClusterNameError(ValueError):
    """A cluster cannot be named: unknown run or label, or an unusable name."""


# --- measuring pictures ------------------------------------------------------------------------
def picture_measures(thumbs: np.ndarray) -> dict[str, np.ndarray]:
    """Per-picture measurements that cluster descriptions are made of.

    Parameters
    ----------
    thumbs : uint8 array, shape (n, h, w, 3)

    Returns
    -------
    dict of str to float32 array, shape (n,)
        ``brightness`` (median luma, 0-1), ``contrast`` (std of luma), ``lights`` (share of bright
        pixels, > 0.55 luma, in a frame whose median is below 0.15: small light sources on dark),
        ``clipped`` (share of pixels above 0.94 luma), ``top``, ``bottom`` (mean luma of the top and
        bottom thirds), ``red``, ``green``, ``blue`` (mean colour of the pixels above 0.08 luma, 0-1).
    """
    pixels = np.asarray(thumbs, dtype=np.float32) / 255.0
    n, h = pixels.shape[:2]
    luma = pixels @ _LUMA
    flat = luma.reshape(n, -1)
    brightness = np.median(flat, axis=1)
    high, low = pixels.max(axis=-1), pixels.min(axis=-1)
    saturation = (high - low) / np.maximum(high, 1e-6)
    chosen = (luma > 0.08) & (saturation > 0.3)
    hue = _hue_bins(pixels, high, low)
    hues = np.stack([((hue == b) & chosen).reshape(n, -1).sum(axis=1) for b in range(HUE_BINS)], axis=1)
    hues = hues / np.maximum(hues.sum(axis=1, keepdims=True), 1)
    lit_count = np.maximum((luma > 0.08).reshape(n, -1).sum(axis=1), 1)
    bright_share = (flat > 0.55).mean(axis=1)
    return {
        "brightness": brightness.astype(np.float32),
        "contrast": flat.std(axis=1).astype(np.float32),
        "lights": np.where(brightness < 0.15, bright_share, 0.0).astype(np.float32),
        "clipped": (flat > 0.94).mean(axis=1).astype(np.float32),
        "top": luma[:, : h // 3].mean(axis=(1, 2)).astype(np.float32),
        "bottom": luma[:, -(h // 3):].mean(axis=(1, 2)).astype(np.float32),
        "saturated": (chosen.reshape(n, -1).sum(axis=1) / lit_count).astype(np.float32),
        "hues": hues.astype(np.float32),
    }


def _hue_bins(pixels: np.ndarray, high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """HSV hue of every pixel as a bin of ``360 / HUE_BINS`` degrees (the usual hexcone formula, vectorised)."""
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    span = np.maximum(high - low, 1e-6)
    hue = np.where(high == r, (g - b) / span % 6, np.where(high == g, (b - r) / span + 2, (r - g) / span + 4))
    return np.minimum((hue * 60.0 // (360 / HUE_BINS)).astype(np.int64), HUE_BINS - 1)


def colour_word(hues: np.ndarray, saturated: float, brightness: float) -> str | None:
    """``"blue"``, ``"orange"``... for the most common hue (``hues``: ``HUE_BINS`` bins) when at
    least 15% of the lit pixels are saturated; ``"grey"`` for lit, unsaturated frames; else None."""
    if saturated >= 0.15 and hues.sum() > 0:
        degrees = (int(np.argmax(hues)) + 0.5) * 360.0 / HUE_BINS
        return next(word for bound, word in _HUES if degrees < bound)
    return "grey" if brightness > 0.2 else None


def describe_cluster(measures: dict[str, np.ndarray], is_day: list, places: list) -> tuple[str, dict]:
    """The automatic name of one cluster and the figures behind it.

    Parameters
    ----------
    measures : dict of str to array, shape (m,)
        :func:`picture_measures` of the cluster's pictures.
    is_day : list of bool or None
        Day (True), night (False) or unknown (None), one per picture.
    places : list of str or None
        Location text per picture (None: not located).

    Returns
    -------
    name : str
        Comma-separated terms, e.g. ``"dark, city lights, night, over Asia"`` (``"mixed"`` when
        nothing stands out).
    description : dict
        The medians, shares and the terms, for the run page and the database.
    """
    med = {key: float(np.median(values)) for key, values in measures.items() if key != "hues"}
    share = {"lights": float(np.mean(measures["lights"] > 0.002)),
             "glare": float(np.mean(measures["clipped"] > 0.04)),
             "horizon": float(np.mean((measures["top"] < 0.1) & (measures["bottom"] > 0.2)))}
    terms = []
    if med["brightness"] < 0.12:
        terms.append("dark")
    elif med["brightness"] < 0.28:
        terms.append("dim")
    elif med["brightness"] > 0.62:
        terms.append("bright")
    if med["contrast"] < 0.04:
        terms.append("flat")
    elif share["lights"] >= 0.5:
        terms.append("city lights")
    elif share["glare"] >= 0.5 and med["brightness"] > 0.4:
        terms.append("glare")
    elif share["horizon"] >= 0.5:
        terms.append("horizon")
    elif med["contrast"] > 0.28:
        terms.append("high contrast")
    colour = colour_word(measures["hues"].mean(axis=0), med["saturated"], med["brightness"])
    if colour:
        terms.append(colour)
    known = [bool(v) for v in is_day if v is not None]
    day_share = float(np.mean(known)) if known else None
    if day_share is not None and day_share >= DAY_NIGHT_SHARE:
        terms.append("day")
    elif day_share is not None and day_share <= 1 - DAY_NIGHT_SHARE:
        terms.append("night")
    located = [p for p in places if p]
    place, place_share = None, None
    if located:
        place, count = Counter(located).most_common(1)[0]
        place_share = count / len(located)
        if place_share >= PLACE_SHARE:
            terms.append(f"over {place}")
    name = ", ".join(terms) or "mixed"
    description = {"version": DESCRIPTION_VERSION, "n_pictures": int(len(measures["brightness"])), "terms": terms,
                   "brightness": round(med["brightness"], 4), "contrast": round(med["contrast"], 4),
                   "colour": colour, "share_city_lights": round(share["lights"], 4),
                   "share_glare": round(share["glare"], 4), "share_horizon": round(share["horizon"], 4),
                   "day_share": None if day_share is None else round(day_share, 4), "n_located": len(located),
                   "place": place, "place_share": None if place_share is None else round(place_share, 4)}
    return name, description


def unique_names(names: dict[int, str]) -> dict[int, str]:
    """Names made unique within a run: the second cluster with a name gets ``" (2)"``, the third ``" (3)"``..."""
    seen: Counter = Counter()
    unique = {}
    for label in sorted(names):
        seen[names[label]] += 1
        unique[label] = names[label] + (f" ({seen[names[label]]})" if seen[names[label]] > 1 else "")
    return unique


# --- the database ------------------------------------------------------------------------------
def _run_row(engine: Engine, run_id: int) -> dict:
    r = schema.clustering_runs
    with engine.connect() as conn:
        row = conn.execute(select(r.c.run_id, r.c.created_at).where(r.c.run_id == int(run_id))).mappings().first()
    if row is None:
        raise ClusterNameError(f"clustering run {run_id} does not exist; `iss reports` lists the runs")
    return dict(row)


def describe_run(cache, engine: Engine, run_id: int) -> dict[int, tuple[str, dict]]:
    """Automatic names of every cluster of a run (labels of -1, noise, are named ``noise``).

    Parameters
    ----------
    cache : iss.data.cache.ImageCache
        Thumbnails of the run's pictures (pictures not in it are left out of the measures). At most
        ``MAX_MEASURED`` of each cluster are read, evenly spread over its id-sorted members; the
        day/night and place shares and ``n_pictures`` count every picture (``n_measured``: those read).
    engine : Engine
    run_id : int

    Returns
    -------
    dict
        ``{label: (name, description)}``, names unique within the run.
    """
    e, loc = schema.pictures_embedding, schema.pictures_location
    stmt = (select(e.c.pictures_id, e.c.label, loc.c.is_day, loc.c.pictures_location_text)
            .select_from(e.outerjoin(loc, loc.c.pictures_id == e.c.pictures_id))
            .where(e.c.run_id == int(run_id)).order_by(e.c.pictures_id))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    rows = [r for r in rows if r.pictures_id in cache]
    if not rows:
        return {}
    labels = np.array([r.label for r in rows])
    measured = np.concatenate([members[np.unique(np.linspace(0, len(members) - 1, MAX_MEASURED).round().astype(int))]
                               if len(members) > MAX_MEASURED else members
                               for members in (np.flatnonzero(labels == label) for label in np.unique(labels))])
    measured.sort()  # id order, evenly spread over each cluster's id-sorted members (no random draw)
    ids = [rows[i].pictures_id for i in measured]
    parts = [picture_measures(cache.get_thumbs(ids[start:start + _BATCH])) for start in range(0, len(ids), _BATCH)]
    measures = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    result, names = {}, {}
    for label in sorted(set(labels.tolist())):
        members = np.flatnonzero(labels == label)
        shown = np.flatnonzero(labels[measured] == label)
        name, description = describe_cluster({k: v[shown] for k, v in measures.items()},
                                             [None if rows[i].is_day is None else bool(rows[i].is_day) for i in members],
                                             [rows[i].pictures_location_text for i in members])
        description.update(n_pictures=int(len(members)), n_measured=int(len(shown)))
        names[label] = "noise" if label == -1 else name
        result[label] = description
    return {label: (name, result[label]) for label, name in unique_names(names).items()}


def ensure_cluster_names(cache, engine: Engine, run_id: int) -> dict[int, dict]:
    """The names of a run's clusters, describing them first when the run has none (or changed since).

    Returns
    -------
    dict
        As :func:`cluster_names`.
    """
    run = _run_row(engine, run_id)
    n = schema.cluster_names
    with engine.connect() as conn:
        stored = conn.execute(select(n.c.label, n.c.name, n.c.run_created_at, n.c.description)
                              .where(n.c.run_id == int(run_id))).all()
    same_run = bool(stored) and all(r.run_created_at == run["created_at"] for r in stored)
    if same_run and all((r.description or {}).get("version") == DESCRIPTION_VERSION for r in stored):
        return cluster_names(engine, run_id)
    given = {int(r.label): r.name for r in stored if r.name} if same_run else {}  # kept when only the rules changed
    if not same_run and any(r.name for r in stored):
        log.warning("run %s was re-run since its clusters were named: dropping the names given by hand (%s); "
                    "name them again with `iss name-cluster`", run_id,
                    ", ".join(f"{r.label}: {r.name!r}" for r in stored if r.name))
    described = describe_run(cache, engine, run_id)
    now = dt.datetime.now()
    with engine.begin() as conn:
        conn.execute(delete(n).where(n.c.run_id == int(run_id)))
        upsert(conn, n, [{"run_id": int(run_id), "label": int(label), "auto_name": name[:MAX_NAME_LENGTH],
                          "name": given.get(int(label)), "description": description, "run_created_at": run["created_at"],
                          "updated_at": now} for label, (name, description) in described.items()])
    log.info("run %s: clusters described: %s", run_id, "; ".join(f"{k}: {v[0]}" for k, v in described.items()))
    return cluster_names(engine, run_id)


def cluster_names(engine: Engine, run_id: int) -> dict[int, dict]:
    """Recorded names of a run's clusters.

    Returns
    -------
    dict
        ``{label: {"name": shown name, "auto_name": str, "given": bool, "description": dict}}``;
        empty when the run was never described.
    """
    n = schema.cluster_names
    with engine.connect() as conn:
        rows = conn.execute(select(n.c.label, n.c.name, n.c.auto_name, n.c.description)
                            .where(n.c.run_id == int(run_id)).order_by(n.c.label)).all()
    return {int(r.label): {"name": r.name or r.auto_name, "auto_name": r.auto_name, "given": bool(r.name),
                           "description": r.description or {}} for r in rows}


def name_cluster(cache, engine: Engine, run_id: int, label: int, name: str | None) -> dict[int, dict]:
    """Give cluster ``label`` of run ``run_id`` a name (``None`` or ``""``: back to its automatic name).

    Raises
    ------
    ClusterNameError
        Unknown run or label, or a name longer than 255 characters (the message says which).
    """
    cleaned = " ".join((name or "").split())
    if len(cleaned) > MAX_NAME_LENGTH:
        raise ClusterNameError(f"the name is {len(cleaned)} characters long; at most {MAX_NAME_LENGTH} fit")
    names = ensure_cluster_names(cache, engine, run_id)
    if int(label) not in names:
        raise ClusterNameError(f"run {run_id} has no cluster {label}; its clusters are "
                               f"{', '.join(str(k) for k in names) or 'none'}")
    n = schema.cluster_names
    with engine.begin() as conn:
        conn.execute(update(n).where(and_(n.c.run_id == int(run_id), n.c.label == int(label)))
                     .values(name=cleaned or None, updated_at=dt.datetime.now()))
    return cluster_names(engine, run_id)


def find_clusters(names: dict[int, dict], wanted: str) -> list[int]:
    """Labels whose shown name is ``wanted`` (case-insensitive), else whose name contains it.

    Used by poster rules (``clusters: ["city lights"]``).
    """
    key = " ".join(wanted.split()).casefold()
    exact = [label for label, info in names.items() if info["name"].casefold() == key]
    return exact or [label for label, info in names.items() if key in info["name"].casefold()]
