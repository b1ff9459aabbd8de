"""Choosing one picture per slot of a template, from a clustering run in the database.

Reads ``clustering_runs``, ``pictures_embedding`` (label, silhouette), ``pictures`` (file name)
and, for "best of cluster", the ingest cache's thumbnails (or a downscaled decode of the
full-size files when a picture is not cached).

Selection is deterministic for a given seed and database content: candidates are sorted by
picture id before any random draw, slots are filled in a fixed order (each rule's
:attr:`~iss.posters.rules.Rule.priority`: explicit ids first, then best-of-cluster, then
random-from-clusters; smaller candidate pools first within each kind, so a narrow slot is not
starved by a broad one), and one ``numpy`` generator seeded with the poster's seed makes every
draw; a rule picks through :class:`Picking`.

Variety: ``auto`` clusters are drawn farthest-first (a seeded first cluster, then each time the
cluster whose mean look, :func:`layout` of its pictures, is farthest from those already drawn),
and a candidate picture whose look is within ``posters.near_duplicate_distance`` of a picture
already on the poster is passed over, so no slot repeats another.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import desc, select
from sqlalchemy.engine import Engine

from iss.config_schema import Posters
from iss.db import schema
from iss.db.queries import filenames_of
from iss.posters import quality
from iss.posters.templates import PosterTemplateError, Slot, Template

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunInfo:
    """A row of ``clustering_runs``."""

    run_id: int
    clustering_type: str
    clustering_version: int
    model_type: str
    model_name: str

    def describe(self) -> str:
        return (f"run {self.run_id} ({self.clustering_type} v{self.clustering_version}, "
                f"{self.model_type}/{self.model_name})")


@dataclass
class RunPictures:
    """The pictures of one clustering run, sorted by id.

    Attributes
    ----------
    ids : ndarray of str, shape (n,)
    labels : ndarray of int, shape (n,)
    silhouettes : ndarray of float, shape (n,), NaN where unknown
    filenames : dict
        ``{pictures_id: filename}`` (from ``pictures``).
    """

    run: RunInfo
    ids: np.ndarray
    labels: np.ndarray
    silhouettes: np.ndarray
    filenames: dict = field(default_factory=dict)
    _by_label: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        for label in np.unique(self.labels):
            self._by_label[int(label)] = self.ids[self.labels == label]

    @property
    def clusters(self) -> list[int]:
        """Cluster labels of the run, noise (-1) excluded."""
        return sorted(label for label in self._by_label if label >= 0)

    def members(self, labels) -> list[str]:
        """Sorted picture ids of the given clusters."""
        found = [self._by_label[label] for label in labels if label in self._by_label]
        return sorted(np.concatenate(found).tolist()) if found else []

    def size(self, label: int) -> int:
        return len(self._by_label.get(label, ()))


@dataclass(frozen=True)
class SlotChoice:
    """The picture chosen for a slot, with why (``detail``: rule, scores)."""

    slot: Slot
    pictures_id: str
    filename: str
    run_id: int | None = None
    detail: dict = field(default_factory=dict)


@dataclass
class Selection:
    """One picture per slot (in slot order), the template's run and the clusters drawn for ``auto``."""

    choices: list[SlotChoice]
    run_id: int | None
    auto_clusters: dict[int, list[int]]
    cluster_contrast: dict[int, dict[int, float]] = field(default_factory=dict)


# --- runs -------------------------------------------------------------------------
def _runs(engine: Engine) -> list[RunInfo]:
    r = schema.clustering_runs
    with engine.connect() as conn:
        rows = conn.execute(select(r.c.run_id, r.c.clustering_type, r.c.clustering_version, r.c.model_type,
                                   r.c.model_name).order_by(desc(r.c.created_at), desc(r.c.run_id))).all()
    return [RunInfo(*row) for row in rows]


def resolve_run(engine: Engine, spec: dict, template: Template, slot: Slot | None = None) -> RunInfo:
    """The clustering run matching ``spec`` (keys ``run_id``, ``clustering_type``, ``version``,
    ``model_type``, ``model_name``), the latest one (by ``created_at``, then id) when several or
    none of the keys are given.

    Raises
    ------
    PosterTemplateError
        No run matches: names the template, the slot and the runs that exist.
    """
    runs = _runs(engine)
    wanted = {"run_id": "run_id", "clustering_type": "clustering_type", "version": "clustering_version",
              "model_type": "model_type", "model_name": "model_name"}
    matching = [run for run in runs
                if all(str(getattr(run, attr)) == str(spec[key]) for key, attr in wanted.items() if key in spec)]
    if not matching:
        known = "; ".join(run.describe() for run in runs[:10]) or "none: run `make exec_clustering` first"
        what = ", ".join(f"{k}={v}" for k, v in spec.items()) or "latest"
        raise template.error(f"no clustering run matches {what}; runs in the database: {known}", slot)
    return matching[0]


def load_run_pictures(engine: Engine, run: RunInfo) -> RunPictures:
    """Every picture of ``run`` that is also in ``pictures``, sorted by id."""
    e, p = schema.pictures_embedding, schema.pictures
    stmt = (select(e.c.pictures_id, e.c.label, e.c.silhouette, p.c.filename)
            .join(p, p.c.pictures_id == e.c.pictures_id)
            .where(e.c.run_id == run.run_id).order_by(e.c.pictures_id))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    ids = np.array([r.pictures_id for r in rows], dtype=object)
    labels = np.array([r.label for r in rows], dtype=np.int64)
    silhouettes = np.array([np.nan if r.silhouette is None else r.silhouette for r in rows], dtype=np.float64)
    return RunPictures(run=run, ids=ids, labels=labels, silhouettes=silhouettes,
                       filenames={r.pictures_id: r.filename for r in rows})


# --- what pictures look like ----------------------------------------------------------
# posters.near_duplicate_distance's default (its measurement is told in iss/config_schema.py)
NEAR_DUPLICATE_DISTANCE = Posters.model_fields["near_duplicate_distance"].default


def layout(images: np.ndarray) -> np.ndarray:
    """Mean RGB (0-1) of a 6x3 grid of each picture, float32 (n, 54): what a picture looks like from afar.
    Two pictures are near-duplicates when the RMS difference of their layouts is small."""
    from iss.search.collection import grid_colours

    return grid_colours(images)


def look_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RMS difference of layouts along the last axis (broadcasting: ``(d,)`` against ``(m, d)`` gives ``(m,)``)."""
    return np.sqrt(((np.asarray(a) - np.asarray(b)) ** 2).mean(axis=-1))


# --- auto clusters ----------------------------------------------------------------
def cluster_profiles(pictures: RunPictures, thumbs: "_ThumbSource", filenames: dict[str, str],
                     per_cluster: int = 24) -> dict[int, tuple[float, np.ndarray]]:
    """Median luminance contrast and mean layout of each cluster, on up to ``per_cluster`` pictures
    spread evenly over its id-sorted members (no random draw: it must not shift the poster's seeded draws)."""
    result = {}
    for label in pictures.clusters:
        members = pictures.members([label])
        step = max(1, len(members) // per_cluster)
        sample = [i for i in members[::step][:per_cluster] if i in filenames]
        sample = [i for i in sample if thumbs.cached(i) or (thumbs.collections / filenames[i]).is_file()]
        if sample:
            images, _ = thumbs.images(sample, filenames)
            result[label] = (round(float(np.median(quality.contrast(images))), 4), layout(images).mean(axis=0))
    return result


def cluster_contrast(pictures: RunPictures, thumbs: "_ThumbSource", filenames: dict[str, str],
                     per_cluster: int = 24) -> dict[int, float]:
    """Median luminance contrast of each cluster (see :func:`cluster_profiles`)."""
    return {label: c for label, (c, _) in cluster_profiles(pictures, thumbs, filenames, per_cluster).items()}


def farthest_first(labels: list[int], looks: dict[int, np.ndarray], rng: np.random.Generator) -> list[int]:
    """``labels`` ordered so that each is the one least like those before it: a seeded first, then
    farthest-point order on the clusters' mean layouts (those without one keep a seeded order, last)."""
    known = [c for c in labels if c in looks]
    rest = [int(c) for c in rng.permutation([c for c in labels if c not in looks])]
    if not known:
        return rest
    order = [int(known[int(rng.integers(len(known)))])]
    while len(order) < len(known):
        left = [c for c in known if c not in order]
        nearest = [float(look_distance(looks[c], np.stack([looks[o] for o in order])).min()) for c in left]
        order.append(int(left[int(np.argmax(nearest))]))
    return order + rest


def draw_auto_clusters(pictures: RunPictures, slots: list[Slot], n_clusters: int, rng: np.random.Generator,
                       template: Template, flat: list[int] | tuple = (),
                       looks: dict[int, np.ndarray] | None = None) -> list[int]:
    """The clusters drawn for this poster's ``auto`` rules.

    The run's clusters in farthest-first order of their ``looks`` (mean layouts; seeded random order
    without them), the ``flat`` ones last (used only when the others are too few); the first
    ``n_clusters`` of it (or more if an ``auto:K`` asks for it), extended while they hold fewer
    pictures than the slots that draw from them.
    """
    flat = [c for c in pictures.clusters if c in set(flat)]
    lively = [c for c in pictures.clusters if c not in set(flat)]
    order = farthest_first(lively, looks or {}, rng) + [int(c) for c in rng.permutation(flat)]
    needed = max([n_clusters] + [s.rule.auto + 1 for s in slots if s.rule.auto is not None and s.rule.auto >= 0])
    if needed > len(order):
        slot = next((s for s in slots if s.rule.auto is not None and s.rule.auto + 1 > len(order)), slots[0])
        raise template.error(f"too few clusters: its rule ({slot.rule.describe()}) needs {needed} clusters drawn for "
                             f"the poster but {pictures.run.describe()} has {len(order)}", slot)
    chosen = order[:needed]
    n_slots = len(slots)
    while sum(pictures.size(c) for c in chosen) < n_slots and len(chosen) < len(order):
        chosen.append(order[len(chosen)])
    used_flat = [c for c in chosen if c in set(flat)]
    if used_flat:
        log.warning("%s: too few non-flat clusters in %s; auto rules also draw from flat cluster(s) %s",
                    template.source, pictures.run.describe(), used_flat)
    return chosen


def _run_names(cfg, engine: Engine, run_id: int) -> dict[int, dict]:
    """The run's cluster names, described first if it has none (needs the ingest cache then)."""
    from iss.clustering.names import cluster_names, ensure_cluster_names
    from iss.data.cache import CacheError, ImageCache

    try:
        return ensure_cluster_names(ImageCache(cfg.path("cache")), engine, run_id)
    except (CacheError, OSError):
        return cluster_names(engine, run_id)


# --- the selection ----------------------------------------------------------------
class _ThumbSource:
    """Small images for quality scores: cache thumbnails when every picture is cached, else decodes."""

    def __init__(self, cfg, collections: Path):
        self.cfg, self.collections = cfg, collections
        self._cache = None
        self._cache_tried = False

    def _open_cache(self):
        if not self._cache_tried:
            self._cache_tried = True
            try:
                from iss.data.cache import CacheError, ImageCache
                self._cache = ImageCache(self.cfg.path("cache"))
            except (CacheError, OSError, ValueError) as exc:
                log.info("no ingest cache for quality scores (%s); decoding pictures instead", exc)
        return self._cache

    def cached(self, picture_id: str) -> bool:
        cache = self._open_cache()
        return cache is not None and picture_id in cache

    def images(self, ids: list[str], filenames: dict[str, str]) -> tuple[np.ndarray, str]:
        cache = self._open_cache()
        if cache is not None and all(i in cache for i in ids):
            return cache.get_thumbs(ids), "thumbnail"
        size = tuple(self.cfg.get("ingest.thumb_size"))
        fit = str(self.cfg.get("ingest.fit"))
        return np.stack([quality.small_decode(self.collections / filenames[i], size, fit) for i in ids]), "decode"


def _auto_clusters(cfg, runs: dict[int, RunPictures], auto_slots: list[Slot], slot_run: dict[int, int],
                   n_auto: int, rng: np.random.Generator, template: Template,
                   thumbs: _ThumbSource) -> tuple[dict[int, list[int]], dict[int, dict[int, float]]]:
    """The clusters drawn for "auto" rules, per run (the most unlike each other first; flat ones, blank
    screens, only if the others are too few), and the median contrast of each cluster of those runs."""
    min_contrast = float(cfg.get("posters.auto_min_contrast"))
    auto: dict[int, list[int]] = {}
    contrasts: dict[int, dict[int, float]] = {}
    for rid in sorted(runs):
        slots = [s for s in auto_slots if slot_run[s.index] == rid]
        if not slots:
            continue
        profiles = cluster_profiles(runs[rid], thumbs, runs[rid].filenames)
        contrasts[rid] = {label: c for label, (c, _) in profiles.items()}
        flat: list[int] = []
        if min_contrast > 0:
            flat = [c for c in runs[rid].clusters if contrasts[rid].get(c, 0.0) < min_contrast]
            if flat:
                log.info("run %d: clusters %s are flat (median contrast below %.3g): drawn for auto rules only "
                         "if the others are too few", rid, flat, min_contrast)
        auto[rid] = draw_auto_clusters(runs[rid], slots, n_auto, rng, template, flat,
                                       looks={label: look for label, (_, look) in profiles.items()})
    return auto, contrasts


def select_pictures(cfg, engine: Engine, template: Template, seed: int, run_id: int | None = None,
                    n_auto_clusters: int | None = None) -> Selection:
    """One picture per slot of ``template``, never the same picture twice.

    Parameters
    ----------
    cfg : Config
        For ``paths.collections``, ``paths.cache`` and ``posters.n_clusters_per_poster``.
    engine : Engine
    template : Template
    seed : int
        Seeds every random draw (``auto`` clusters, picks within clusters or id lists).
    run_id : int, optional
        Use this run instead of the template's ``run`` (rules naming their own run keep it).
    n_auto_clusters : int, optional
        Clusters drawn for ``auto`` rules; default ``posters.n_clusters_per_poster``.

    Raises
    ------
    PosterTemplateError
        Unknown run, cluster or picture id, or too few pictures for a slot (names the slot).
    """
    rng = np.random.default_rng(seed)
    collections = cfg.path("collections")
    n_auto = int(n_auto_clusters if n_auto_clusters is not None else cfg.get("posters.n_clusters_per_poster"))
    needs_run = [s for s in template.slots if s.rule.needs_run]

    # the runs: the template's (or run_id), and any a rule names
    runs: dict[int, RunPictures] = {}
    slot_run: dict[int, int] = {}
    template_run = None
    if needs_run or run_id is not None:
        spec = {"run_id": run_id} if run_id is not None else template.run
        template_run = resolve_run(engine, spec, template)
    for slot in needs_run:
        run = template_run if slot.rule.run is None else resolve_run(engine, slot.rule.run, template, slot)
        if run.run_id not in runs:
            runs[run.run_id] = load_run_pictures(engine, run)
        slot_run[slot.index] = run.run_id

    thumbs = _ThumbSource(cfg, collections)
    auto, contrasts = _auto_clusters(cfg, runs, [s for s in needs_run if s.rule.auto is not None], slot_run, n_auto,
                                     rng, template, thumbs)

    names = {rid: _run_names(cfg, engine, rid) for rid in sorted(runs)
             if any(isinstance(c, str) for s in needs_run if slot_run[s.index] == rid for c in s.rule.clusters)}
    pools = {s.index: s.rule.pool(s, runs.get(slot_run.get(s.index)), auto.get(slot_run.get(s.index)), template,
                                  names.get(slot_run.get(s.index))) for s in template.slots}
    filenames: dict[str, str] = {}
    for pictures in runs.values():
        filenames.update(pictures.filenames)
    filenames.update(filenames_of(engine, {i for pool in pools.values() for i in pool if i not in filenames}))
    for slot in template.slots:
        missing = [i for i in pools[slot.index] if i not in filenames]
        if missing:
            raise template.error(f"unknown picture id {', '.join(missing[:5])}"
                                 f"{'...' if len(missing) > 5 else ''}: not in the pictures table "
                                 f"(run `make populate_db`, or fix the id)", slot)

    silhouette_of = {}
    for pictures in runs.values():
        silhouette_of.update(zip(pictures.ids.tolist(), pictures.silhouettes.tolist()))
    picking = Picking(rng=rng, thumbs=thumbs, filenames=filenames, silhouette_of=silhouette_of, collections=collections,
                      near=float(cfg.get("posters.near_duplicate_distance")))
    used: set[str] = set()
    choices: dict[int, SlotChoice] = {}
    for slot in sorted(template.slots, key=lambda s: (s.rule.priority, len(pools[s.index]), s.index)):
        pool = pools[slot.index]
        found = slot.rule.choose(slot, [i for i in pool if i not in used], picking)
        if found is None:
            raise _too_few(template, slot, pool, used, picking.missing_files, choices, slot_run.get(slot.index))
        picked, detail = found
        used.add(picked)
        picking.shown(picked, slot)
        detail = {"rule": slot.rule.describe(), **detail}
        choices[slot.index] = SlotChoice(slot=slot, pictures_id=picked, filename=filenames[picked],
                                         run_id=slot_run.get(slot.index), detail=detail)
    return Selection(choices=[choices[s.index] for s in template.slots],
                     run_id=template_run.run_id if template_run else None, auto_clusters=auto,
                     cluster_contrast=contrasts)


@dataclass
class Picking:
    """The poster being filled, as a rule's :meth:`~iss.posters.rules.Rule.choose` sees it: the seeded
    generator, the pictures' files, looks and silhouettes, and the checks every slot shares.

    Attributes
    ----------
    rng : numpy.random.Generator
        The poster's generator: every random draw goes through it, in slot order.
    thumbs : _ThumbSource
        Small images of the pictures (``thumbs.images(ids, filenames)``).
    filenames : dict
        ``{pictures_id: filename}`` of every candidate.
    silhouette_of : dict
        ``{pictures_id: silhouette}`` in its run.
    collections : Path
        The pictures' folder.
    near : float
        ``posters.near_duplicate_distance``: a picture whose look is nearer than this to one already
        shown is a near-duplicate (0: no check).
    missing_files : set of str
        Pictures found without a file so far.
    """

    rng: np.random.Generator
    thumbs: _ThumbSource
    filenames: dict[str, str]
    silhouette_of: dict[str, float]
    collections: Path
    near: float = NEAR_DUPLICATE_DISTANCE
    missing_files: set[str] = field(default_factory=set)
    _shown_looks: list[np.ndarray] = field(default_factory=list)  # layouts of the pictures chosen so far

    def has_file(self, pid: str, slot: Slot) -> bool:
        """Whether the picture's file exists (a missing one is logged once, and never picked)."""
        if pid in self.missing_files:
            return False
        if (self.collections / self.filenames[pid]).is_file():
            return True
        log.warning("%s: picture %s has no file %s; choosing another", slot.name, pid,
                    self.collections / self.filenames[pid])
        self.missing_files.add(pid)
        return False

    def near_duplicate(self, pid: str) -> bool:
        """Whether ``pid`` looks like a picture already on the poster (and so is passed over)."""
        if not self._shown_looks or self.near <= 0:
            return False
        images, _ = self.thumbs.images([pid], self.filenames)
        return bool(look_distance(layout(images)[0], np.stack(self._shown_looks)).min() < self.near)

    def shown(self, pid: str, slot: Slot) -> None:
        """Record that ``pid`` is on the poster (its look, for :meth:`near_duplicate`)."""
        if self.has_file(pid, slot):
            self._shown_looks.append(layout(self.thumbs.images([pid], self.filenames)[0])[0])

    def draw(self, slot: Slot, available: list[str], avoid_near_duplicates: bool = True) -> tuple[str, dict] | None:
        """A seeded random pick among ``available`` with a file, passing over near-duplicates (unless
        ``avoid_near_duplicates`` is False) while others are left."""
        available = list(available)
        found, passed = None, []
        while available and found is None:
            picked = available.pop(int(self.rng.integers(len(available))))
            if not self.has_file(picked, slot):
                continue
            if avoid_near_duplicates and self.near_duplicate(picked):
                passed.append(picked)
            else:
                found = picked, {"candidates": len(available) + 1 + len(passed), "near_duplicates_passed": len(passed)}
        if found is None and passed:  # only near-duplicates left: a repeat beats an empty slot
            log.warning("%s: every candidate left looks like a picture already on the poster; using %s",
                        slot.name, passed[0])
            found = passed[0], {"candidates": len(passed), "near_duplicate": True}
        return found

    def best(self, slot: Slot, available: list[str], shortlist: int) -> tuple[str, dict] | None:
        """The top ``shortlist`` pictures by silhouette (with a file, not near-duplicates), then the best by
        sharpness x exposure."""
        return _best(slot, available, self.silhouette_of, self.thumbs, self.filenames, self.has_file,
                     self.near_duplicate, shortlist)


def _best(slot: Slot, available: list[str], silhouette_of: dict, thumbs: _ThumbSource,
          filenames: dict[str, str], has_file, near_duplicate=lambda pid: False,
          shortlist_size: int = 10) -> tuple[str, dict] | None:
    """The top ``shortlist`` pictures by silhouette (with a file, not a near-duplicate of a picture
    already chosen), then the best by sharpness x exposure."""
    sil = np.array([silhouette_of.get(i, np.nan) for i in available], dtype=np.float64)
    sil = np.where(np.isnan(sil), -np.inf, sil)
    shortlist = []
    # stable sort on -silhouette keeps the id order among ties: deterministic
    for i in np.argsort(-sil, kind="stable"):
        if has_file(available[i], slot) and not near_duplicate(available[i]):
            shortlist.append(available[i])
            if len(shortlist) == shortlist_size:
                break
    if not shortlist:
        return None
    images, source = thumbs.images(shortlist, filenames)
    scores = quality.quality(images)
    best = int(np.argmax(scores))  # first of equal scores = higher silhouette
    sharp, expo = quality.sharpness(images[best:best + 1])[0], quality.exposure(images[best:best + 1])[0]
    silhouette = silhouette_of.get(shortlist[best])
    return shortlist[best], {
        "silhouette": None if silhouette is None or np.isnan(silhouette) else round(float(silhouette), 6),
        "sharpness": round(float(sharp), 8), "exposure": round(float(expo), 6),
        "quality": round(float(scores[best]), 6), "shortlist": len(shortlist), "quality_source": source}


def _too_few(template: Template, slot: Slot, pool: list[str], used: set[str], missing: set[str],
             choices: dict[int, SlotChoice], run_id: int | None) -> PosterTemplateError:
    where = f" of run {run_id}" if run_id is not None else ""
    if not pool:
        return template.error(f"too few pictures: its rule ({slot.rule.describe()}) matches no picture{where}", slot)
    takers = sorted(c.slot.index for c in choices.values() if c.pictures_id in set(pool))
    parts = [f"too few pictures: its rule ({slot.rule.describe()}) matches {len(pool)} picture(s){where}"]
    if takers:
        parts.append(f"{len(set(pool) & used)} already used by slot(s) {', '.join(map(str, takers))}")
    if set(pool) & missing:
        parts.append(f"{len(set(pool) & missing)} without a file in the collection")
    return template.error("; ".join(parts) + "; widen the rule (more clusters or ids) or remove slots", slot)
