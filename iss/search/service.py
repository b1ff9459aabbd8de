"""Similar-picture search as a service: what the ``iss similar`` command and the explorer server share.

Reads
    The trained model, the search index (:func:`iss.search.build.sync_index` builds or updates
    it on start), the ingest cache (thumbnails) and the database (``pictures`` for times,
    ``pictures_location``, ``clustering_runs`` and ``pictures_embedding`` for clusters).
Writes
    Nothing but the search index folder (when it has to be built or updated).

A query picture goes through the same decoding as ingest (:func:`iss.data.images.decode_picture`),
so a collection picture encodes to its stored latent; the encoder runs as its LiteRT export
(:mod:`iss.models.lite`), so neither this module nor a query imports TensorFlow. The index gives
the nearest pictures, and :class:`iss.search.novelty.NoveltyCalibration` decides whether the best
of them is a good match, from the latent distance and from the query's appearance (colour and
gradient statistics, :mod:`iss.search.appearance`) and texture.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

import numpy as np
from PIL import Image
from sqlalchemy import and_, func, select
from sqlalchemy.engine import Engine

from iss.config import Config
from iss.data.cache import ImageCache
from iss.db import schema
from iss.search.appearance import describe, working_rgb
from iss.search.build import SearchModel, load_search_model, model_names, search_settings, sync_index
from iss.search.index import SimilarityIndex
from iss.search.novelty import NoveltyCalibration, Verdict, confidence_means, thumb_correlation, thumb_correlations

log = logging.getLogger(__name__)

# PictureError reasons -> HTTP status of a rejected upload.
REJECT_STATUS = {"empty": 400, "not_image": 400, "corrupt": 400, "truncated": 400, "unreadable": 400,
                 "too_large": 413}


class QueryError(Exception):
    """A query picture that cannot be searched: ``reason`` (empty | not_image | too_large | ...) and ``status``."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = REJECT_STATUS.get(reason, 400)


@dataclass
class Hit:
    """One result: a collection picture near the query."""

    rank: int
    pictures_id: str
    distance: float
    confidence: float
    good_match: bool
    cluster: int | None = None
    run_id: int | None = None
    taken_at: str | None = None

    def as_dict(self) -> dict:
        return {"rank": self.rank, "pictures_id": self.pictures_id, "distance": round(self.distance, 6),
                "confidence": round(self.confidence, 4), "good_match": self.good_match, "cluster": self.cluster,
                "run_id": self.run_id, "taken_at": self.taken_at,
                "thumb_url": f"/thumbs/{quote(self.pictures_id, safe='')}.jpg",
                "picture_url": f"/pictures/{quote(self.pictures_id, safe='')}"}


@dataclass
class SearchResult:
    """The answer to one query.

    Attributes
    ----------
    hits : list of Hit
        Nearest first.
    verdict : Verdict
        ``good_match``, ``near_copy``, the checks and the reasons of a "no good match".
    width, height : int
        Size of the query picture.
    thumb : uint8 array (th, tw, 3)
        The query at thumbnail size (for the result page).
    seconds : dict
        Time spent decoding, encoding, searching, measuring appearance and texture, reading the
        database, and in total.
    confidence_means : str
        One sentence saying what a confidence of, say, 80 % means.
    """

    hits: list[Hit]
    verdict: Verdict
    width: int
    height: int
    thumb: np.ndarray
    model: dict
    seconds: dict = field(default_factory=dict)
    confidence_means: str = ""

    @property
    def good_match(self) -> bool:
        return self.verdict.good_match

    @property
    def verdict_text(self) -> str:
        """``good match``, ``good match (a copy)`` or ``no good match``."""
        if not self.verdict.good_match:
            return "no good match"
        return "good match (a copy)" if self.verdict.near_copy else "good match"

    def as_dict(self) -> dict:
        return {"good_match": self.verdict.good_match,
                "verdict": self.verdict_text,
                **{k: v for k, v in self.verdict.as_dict().items() if k != "good_match"},
                "confidence_means": self.confidence_means,
                "query": {"width": self.width, "height": self.height},
                "model": self.model, "results": [h.as_dict() for h in self.hits],
                "milliseconds": {k: round(v * 1000, 2) for k, v in self.seconds.items()}}


def _iso(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.replace(microsecond=0).isoformat(sep=" ")
    return str(value)


class SearchService:
    """Everything the search needs, loaded once.

    Parameters
    ----------
    cfg : Config
    engine : Engine
    model : SearchModel
    index : SimilarityIndex
    calibration : NoveltyCalibration
    cache : ImageCache
    """

    def __init__(self, cfg: Config, engine: Engine, model: SearchModel, index: SimilarityIndex,
                 calibration: NoveltyCalibration, cache: ImageCache):
        self.cfg, self.engine, self.model = cfg, engine, model
        self.index, self.calibration, self.cache = index, calibration, cache
        self.settings = search_settings(cfg)
        self.k = int(self.settings["k"])
        self.max_k = int(self.settings["max_k"])
        self.page_size = int(self.settings["page_size"])
        self.max_pixels = int(self.settings["max_pixels"])
        self.fit = str(cfg.get("ingest.fit"))
        self._thumb_jpeg = functools.lru_cache(maxsize=4096)(self._render_thumb)

    @classmethod
    def from_config(cls, cfg: Config, engine: Engine | None = None, model_type: str | None = None,
                    model_name: str | None = None, rebuild: bool = False, warm_up: bool = True) -> "SearchService":
        """Load the model, the ingest cache and the index (built or updated as needed).

        ``warm_up`` runs one blank picture through the encoder (allocates its buffers).
        """
        from iss.db.engine import get_engine

        engine = engine or get_engine(cfg.database_url)
        model = load_search_model(cfg, *model_names(cfg, model_type, model_name))
        cache = ImageCache(cfg.path("cache"))
        index, calibration, summary = sync_index(cfg, model, cache, force=rebuild)
        log.info("search index %s (%d pictures) %s in %.1f s", summary.folder, summary.n_index, summary.action,
                 summary.seconds)
        service = cls(cfg, engine, model, index, calibration, cache)
        if warm_up:
            service.warm_up()
        return service

    def warm_up(self) -> None:
        """Encode one blank picture (first-call set-up of the encoder)."""
        self.model.encode(np.zeros((1, *self.model.input_shape), dtype=np.uint8))

    # --- queries ------------------------------------------------------------------------------
    def decode(self, source: str | os.PathLike | bytes | BinaryIO):
        """Decode a query picture like ingest does; raises QueryError (4xx) for a bad one."""
        from iss.data.images import PictureError, decode_picture

        if isinstance(source, (bytes, bytearray, memoryview)):
            source = io.BytesIO(bytes(source))
        try:
            return decode_picture(source, self.cache.input_size, self.cache.thumb_size, max_pixels=self.max_pixels,
                                  fit=self.fit), source
        except PictureError as exc:
            messages = {
                "empty": "the file is empty (0 bytes): choose a picture file",
                "not_image": "the file is not a picture (JPEG, PNG, GIF, BMP, TIFF or WebP expected)",
                "too_large": f"the picture has too many pixels ({exc.detail}); the limit is {self.max_pixels} "
                             f"pixels (search.max_pixels)",
                "truncated": f"the picture file is truncated ({exc.detail}); upload the complete file",
            }
            raise QueryError(exc.reason, messages.get(exc.reason, f"the picture cannot be decoded: {exc.detail}")) \
                from exc

    def search(self, source: str | os.PathLike | bytes | BinaryIO, k: int | None = None) -> SearchResult:
        """Nearest collection pictures of a query picture, with the "no good match" verdict.

        Parameters
        ----------
        source : path, bytes or binary file
        k : int, optional
            Number of results (default ``search.k``; at most ``search.max_k``).
        """
        k = max(1, min(int(k or self.k), self.max_k, len(self.index)))
        started = time.perf_counter()
        decoded, source = self.decode(source)
        decoded_at = time.perf_counter()
        pixels = getattr(decoded, self.cache.size_for(self.model.input_shape))[None]  # the model's input size
        latent = self.model.encode(pixels)
        encoded_at = time.perf_counter()
        neighbours = self.index.query(latent, k=k)
        searched_at = time.perf_counter()
        calibration = self.calibration
        appearance = texture = None
        if calibration.appearance_enabled or calibration.texture_enabled:
            query_descriptor, texture = describe(working_rgb(source, calibration.texture_size))
            if calibration.appearance_enabled:
                appearance = float(calibration.appearance.score(query_descriptor)[0])
        judged_at = time.perf_counter()
        distances, rows = neighbours.distances[0], neighbours.indices[0]
        distance_confidences = self.index.confidence(distances)
        nearest = str(self.index.ids_[rows[0]])
        correlation = thumb_correlation(decoded.thumb, self.cache.get_thumbs([nearest])[0]) \
            if nearest in self.cache and float(distances[0]) <= calibration.near_copy_distance else None
        verdict = calibration.judge(float(distances[0]), float(distance_confidences[0]), self.index.threshold_,
                                    appearance, texture, correlation)
        confidence = calibration.confidences(verdict, distance_confidences)
        ids = [str(self.index.ids_[r]) for r in rows]
        meta = self.picture_rows(ids)
        hits = [Hit(rank=i + 1, pictures_id=pid, distance=float(distances[i]), confidence=float(confidence[i]),
                    good_match=bool(verdict.good_match and confidence[i] >= calibration.alpha),
                    cluster=meta.get(pid, {}).get("label"), run_id=meta.get(pid, {}).get("run_id"),
                    taken_at=_iso(meta.get(pid, {}).get("taken_at")))
                for i, pid in enumerate(ids)]
        finished = time.perf_counter()
        return SearchResult(hits, verdict, decoded.width, decoded.height, decoded.thumb, self.model_info(),
                            {"decode": decoded_at - started, "encode": encoded_at - decoded_at,
                             "search": searched_at - encoded_at, "appearance": judged_at - searched_at,
                             "metadata": finished - judged_at, "total": finished - started},
                            confidence_means(calibration.percentile))

    def model_info(self) -> dict:
        return {"model_type": self.model.model_type, "model_name": self.model.model_name,
                "n_index": len(self.index), "distance_threshold": self.index.threshold_}

    # --- database -----------------------------------------------------------------------------
    def latest_run(self) -> dict | None:
        """The latest clustering run of this model (``run_id``, ``clustering_type``, ...), else the latest
        run on other features (``features: pixels`` clusters the pictures, the autoencoder still
        serves the search), or None."""
        r = schema.clustering_runs
        newest = (r.c.created_at.desc(), r.c.run_id.desc())
        this_model = and_(r.c.model_type == self.model.model_type, r.c.model_name == self.model.model_name)
        with self.engine.connect() as conn:
            row = (conn.execute(select(r).where(this_model).order_by(*newest).limit(1)).mappings().first()
                   or conn.execute(select(r).order_by(*newest).limit(1)).mappings().first())
        return dict(row) if row else None

    def runs(self) -> list[dict]:
        """Every clustering run (newest first) with its number of pictures per label."""
        r, e = schema.clustering_runs, schema.pictures_embedding
        with self.engine.connect() as conn:
            runs = [dict(row) for row in conn.execute(select(r).order_by(r.c.run_id.desc())).mappings()]
            counts = conn.execute(select(e.c.run_id, e.c.label, func.count()).group_by(e.c.run_id, e.c.label)
                                  .order_by(e.c.run_id, e.c.label)).all()
        by_run: dict[int, list] = {}
        for run_id, label, n in counts:
            by_run.setdefault(run_id, []).append((int(label), int(n)))
        for run in runs:
            run["clusters"] = by_run.get(run["run_id"], [])
            run["report"] = self.report_href(run)
        return runs

    def run(self, run_id: int) -> dict | None:
        r = schema.clustering_runs
        with self.engine.connect() as conn:
            row = conn.execute(select(r).where(r.c.run_id == int(run_id))).mappings().first()
        return dict(row) if row else None

    def report_href(self, run: dict) -> str | None:
        """``/reports/<run folder>/index.html`` when the run's reports were rendered, else None."""
        try:
            from iss.visualization.data import run_folder_name
        except ImportError:  # reports not installed: no links
            return None
        folder = run_folder_name(run)
        if (self.cfg.path("reports") / folder / "index.html").is_file():
            return f"/reports/{folder}/index.html"
        return None

    def picture_rows(self, ids: list[str], run_id: int | None = None) -> dict[str, dict]:
        """``taken_at``, ``label``, ``silhouette`` and ``run_id`` (latest run) of pictures, by id."""
        if not ids:
            return {}
        if run_id is None:
            run = self.latest_run()
            run_id = run["run_id"] if run else None
        p, e = schema.pictures, schema.pictures_embedding
        join = p.outerjoin(e, and_(e.c.pictures_id == p.c.pictures_id, e.c.run_id == run_id))
        stmt = select(p.c.pictures_id, p.c.taken_at, e.c.label, e.c.silhouette).select_from(join) \
            .where(p.c.pictures_id.in_(list(ids)))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return {r["pictures_id"]: {"taken_at": r["taken_at"], "label": r["label"], "silhouette": r["silhouette"],
                                   "run_id": run_id if r["label"] is not None else None} for r in rows}

    def picture(self, picture_id: str, k: int | None = None) -> dict:
        """Metadata, clusters in every run, and nearest neighbours of an indexed picture (KeyError if unknown)."""
        row = self.index.row_of(picture_id)
        p, loc, e, r = schema.pictures, schema.pictures_location, schema.pictures_embedding, schema.clustering_runs
        with self.engine.connect() as conn:
            meta = conn.execute(select(p).where(p.c.pictures_id == picture_id)).mappings().first()
            place = conn.execute(select(loc).where(loc.c.pictures_id == picture_id)).mappings().first()
            memberships = conn.execute(
                select(e.c.run_id, e.c.label, e.c.silhouette, r.c.clustering_type, r.c.model_name,
                       r.c.clustering_version)
                .select_from(e.join(r, r.c.run_id == e.c.run_id)).where(e.c.pictures_id == picture_id)
                .order_by(e.c.run_id.desc())).mappings().all()
        neighbours = self.index.neighbours_of(picture_id, k=int(k or self.k))
        ids = [str(self.index.ids_[i]) for i in neighbours.indices[0]]
        rows = self.picture_rows(ids)
        outlier = float(self.index.outlier_scores()[row])
        return {
            "pictures_id": picture_id,
            "metadata": {key: _iso(value) if isinstance(value, dt.datetime) else value
                         for key, value in (dict(meta) if meta else {}).items()},
            "location": dict(place) if place else None,
            "clusters": [dict(m) for m in memberships],
            "outlier_score": outlier,
            "neighbours": [{"rank": i + 1, "pictures_id": pid, "distance": float(d),
                            "confidence": float(c), "cluster": rows.get(pid, {}).get("label"),
                            "taken_at": _iso(rows.get(pid, {}).get("taken_at"))}
                           for i, (pid, d, c) in enumerate(zip(ids, neighbours.distances[0],
                                                               self.index.confidence(neighbours.distances[0])))],
        }

    def cluster_page(self, run_id: int, label: int, page: int = 1, page_size: int | None = None) -> dict:
        """One page of a cluster's pictures, most typical (highest silhouette) first.

        Raises KeyError when the run or the cluster does not exist, IndexError for a page past the end.
        """
        page_size = int(page_size or self.page_size)
        run = self.run(run_id)
        if run is None:
            raise KeyError(f"clustering run {run_id} does not exist")
        e = schema.pictures_embedding
        where = and_(e.c.run_id == int(run_id), e.c.label == int(label))
        with self.engine.connect() as conn:
            total = int(conn.execute(select(func.count()).select_from(e).where(where)).scalar_one())
            if total == 0:
                raise KeyError(f"run {run_id} has no cluster {label}")
            pages = max(1, -(-total // page_size))
            if not 1 <= int(page) <= pages:
                raise IndexError(f"page {page} of cluster {label} does not exist (pages 1 to {pages})")
            # silhouette is NULL for some clusterings: those sort last on both backends
            rows = conn.execute(
                select(e.c.pictures_id, e.c.silhouette).where(where)
                .order_by((e.c.silhouette.is_(None)).asc(), e.c.silhouette.desc(), e.c.pictures_id)
                .limit(page_size).offset((int(page) - 1) * page_size)).all()
        return {"run": run, "label": int(label), "page": int(page), "pages": pages, "total": total,
                "page_size": page_size,
                "pictures": [{"pictures_id": r[0], "silhouette": r[1], "indexed": r[0] in self.index}
                             for r in rows]}

    # --- collection-level lists ---------------------------------------------------------------
    @functools.cached_property
    def near_duplicate_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Index rows ``(a, b)`` and latent distances of the near-duplicate pairs, closest first
        (computed once per service, like :attr:`outlier_scores`: the pages, the JSON and the CSVs share it).

        A pair is closer in latent distance than the median edited copy is to its original
        (:attr:`~iss.search.novelty.NoveltyCalibration.near_duplicate_distance`) *and* its
        thumbnails correlate as an edited copy's do (the search's near-copy test); a picture
        without a cached thumbnail pairs with nothing.
        """
        a, b, d = self.index.near_duplicate_pairs(self.calibration.near_duplicate_distance)
        ids = self.index.ids_
        keep, batch = np.zeros(len(a), bool), 4096
        for start in range(0, len(a), batch):  # memory bounded by the batch of thumbnails
            rows_a, rows_b = a[start:start + batch], b[start:start + batch]
            cached = np.array([str(ids[i]) in self.cache and str(ids[j]) in self.cache for i, j in zip(rows_a, rows_b)],
                              bool)
            if cached.any():
                ta = self.cache.get_thumbs([str(ids[i]) for i in rows_a[cached]])
                tb = self.cache.get_thumbs([str(ids[j]) for j in rows_b[cached]])
                keep[start:start + batch][cached] = thumb_correlations(ta, tb) >= self.calibration.near_copy_correlation
        return a[keep], b[keep], d[keep]

    def near_duplicates(self, limit: int | None = None) -> list[dict]:
        """Pairs of near-duplicate pictures (:meth:`near_duplicate_pairs`), closest first."""
        a, b, d = self.near_duplicate_pairs
        if limit:
            a, b, d = a[:limit], b[:limit], d[:limit]
        ids = [str(x) for x in np.concatenate([self.index.ids_[a], self.index.ids_[b]])]
        rows = self.picture_rows(sorted(set(ids)))
        return [{"pictures_id_a": str(self.index.ids_[i]), "pictures_id_b": str(self.index.ids_[j]),
                 "distance": float(dist),
                 "taken_at_a": _iso(rows.get(str(self.index.ids_[i]), {}).get("taken_at")),
                 "taken_at_b": _iso(rows.get(str(self.index.ids_[j]), {}).get("taken_at"))}
                for i, j, dist in zip(a, b, d)]

    def near_duplicate_sets(self) -> list[dict]:
        """The near-duplicate pairs grouped into sets (connected components), largest first, each with
        the picture to keep (:func:`iss.search.collection.near_duplicate_sets`)."""
        from iss.search.collection import near_duplicate_sets

        a, b, d = self.near_duplicate_pairs
        sets = near_duplicate_sets(len(self.index), a, b, d, self.index.latents_, self.index.ids_)
        ids = [str(self.index.ids_[r]) for s in sets for r in s.rows]
        rows = self.picture_rows(ids)
        return [{"set": k + 1, "size": len(s), "keep": str(self.index.ids_[s.keep]),
                 "max_distance": s.max_distance,
                 "pictures": [{"pictures_id": str(self.index.ids_[r]), "keep": bool(r == s.keep),
                               "taken_at": _iso(rows.get(str(self.index.ids_[r]), {}).get("taken_at")),
                               "cluster": rows.get(str(self.index.ids_[r]), {}).get("label")} for r in s.rows]}
                for k, s in enumerate(sets)]

    @functools.cached_property
    def outlier_scores(self):
        """:class:`iss.search.collection.OutlierScores` of every indexed picture (computed once)."""
        from iss.search.collection import outlier_scores

        return outlier_scores(self.cache, [str(i) for i in self.index.ids_])

    def outliers(self, limit: int | None = None) -> list[dict]:
        """The pictures least like the rest, most odd first (:func:`iss.search.collection.outlier_scores`)."""
        from iss.search.collection import REASONS

        limit = int(limit or self.settings["n_outliers"])
        scores = self.outlier_scores
        order = np.argsort(-scores.score, kind="stable")[:limit]
        ids = [str(self.index.ids_[i]) for i in order]
        rows = self.picture_rows(ids)
        return [{"rank": n + 1, "pictures_id": pid, "score": float(scores.score[i]),
                 "reason": REASONS[str(scores.reason[i])],
                 "cluster": rows.get(pid, {}).get("label"), "taken_at": _iso(rows.get(pid, {}).get("taken_at"))}
                for n, (pid, i) in enumerate(zip(ids, order))]

    @staticmethod
    def to_csv(rows: list[dict], columns: list[str]) -> str:
        """Rows as CSV text with a header (``columns`` in that order)."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()

    # --- thumbnails ---------------------------------------------------------------------------
    def thumbnail_jpeg(self, picture_id: str) -> bytes:
        """JPEG bytes of an indexed picture's thumbnail (KeyError when it is not indexed)."""
        if picture_id not in self.index:
            raise KeyError(f"picture {picture_id!r} is not in the search index")
        return self._thumb_jpeg(picture_id)

    def _render_thumb(self, picture_id: str) -> bytes:
        pixels = self.cache.get_thumbs([picture_id])[0]
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=85)
        return buffer.getvalue()

    def health(self) -> dict:
        """Status, sizes and thresholds (``GET /health``)."""
        return {"status": "ok", **self.model_info(), "threshold_percentile": self.index.threshold_percentile,
                "margin": self.calibration.margin, "calibration": self.calibration.summary(),
                "confidence_means": confidence_means(self.calibration.percentile)}


def write_csv(path: str | Path, text: str) -> Path:
    """Write CSV text to ``path`` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
