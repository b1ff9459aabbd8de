"""What the explorer server's picture and cluster pages show, in human form.

The picture page shows the picture itself at screen size, decoded from the collection's file by the
ingest decoder (:func:`iss.data.images.decode_picture`: EXIF orientation, colour modes), its time,
place, latitude/longitude and day or night in words, its cluster (number and name) in every run
with links to the cluster and the run page, and its nearest pictures. Cluster names come from
:mod:`iss.clustering.names`; renaming one re-writes the static pages that show them.
"""

from __future__ import annotations

import datetime as dt
import io
import logging

log = logging.getLogger(__name__)

SCREEN_SIZE = (1600, 900)  # the picture page's picture fits in this box (pixels), never enlarged
SCREEN_QUALITY = 88
_SOURCES = {"filename": "from the file name", "exif": "from the camera (EXIF)", "mtime": "from the file's date"}
_LOCATION_SOURCES = {"history": "from the position history", "tle": "computed from the orbit (TLE)"}


def human_time(value) -> str:
    """``"Monday 13 November 2017, 18:13:40 UTC"`` (``taken_at`` is stored in UTC), or ``"unknown"``."""
    if value is None:
        return "unknown"
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return f"{value:%A} {value.day} {value:%B %Y, %H:%M:%S} UTC"


def human_size(n_bytes) -> str:
    """``"154 kB"``, ``"2.3 MB"``."""
    if n_bytes is None:
        return "unknown"
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 1e6 else f"{n_bytes / 1e3:.0f} kB"


def latitude_longitude(latitude, longitude) -> str | None:
    """``"12.35° N, 45.60° W"`` or None."""
    if latitude is None or longitude is None:
        return None
    return (f"{abs(latitude):.2f}° {'N' if latitude >= 0 else 'S'}, "
            f"{abs(longitude):.2f}° {'E' if longitude >= 0 else 'W'}")


def run_names(service, run_id: int) -> dict[int, dict]:
    """Names of a run's clusters (described from the pictures the first time)."""
    from iss.clustering.names import ClusterNameError, ensure_cluster_names

    try:
        return ensure_cluster_names(service.cache, service.engine, run_id)
    except ClusterNameError:
        return {}


def cluster_covers(service, run_id: int) -> dict[int, str]:
    """``{label: pictures_id}``: the most typical (highest silhouette) picture of each cluster of a run."""
    from sqlalchemy import select

    from iss.db import schema

    e = schema.pictures_embedding
    with service.engine.connect() as conn:
        rows = conn.execute(select(e.c.label, e.c.pictures_id, e.c.silhouette).where(e.c.run_id == int(run_id))).all()
    best: dict[int, tuple] = {}
    for label, pid, silhouette in rows:
        key = (silhouette if silhouette is not None else float("-inf"), pid)
        if label not in best or key > best[label]:
            best[label] = key
    return {int(label): key[1] for label, key in best.items() if key[1] in service.index}


def picture_page(service, info: dict) -> dict:
    """The picture page's fields, from :meth:`iss.search.service.SearchService.picture`'s answer."""
    from iss.visualization.style import cluster_title

    meta, place = info.get("metadata") or {}, info.get("location") or {}
    day = place.get("is_day")
    facts = [("Taken", human_time(meta.get("taken_at")), _SOURCES.get(meta.get("taken_at_source"), ""))]
    if place:
        facts += [("Where", place.get("pictures_location_text") or "no place name",
                   _LOCATION_SOURCES.get(place.get("source"), "")),
                  ("Latitude, longitude",
                   latitude_longitude(place.get("pictures_latitude"), place.get("pictures_longitude")) or "unknown", ""),
                  ("Day or night", "unknown" if day is None else ("day" if day else "night"),
                   "" if day is None else ("the sun was up there" if day else "the sun was down there"))]
    else:
        facts.append(("Where", "unknown", "no position is known for this time"))
    facts.append(("File", f"{meta.get('filename', '?')} · {meta.get('width', '?')} × {meta.get('height', '?')} px "
                          f"· {human_size(meta.get('file_size'))}", ""))
    clusters, names_of = [], {}
    for member in info.get("clusters", []):
        run_id = member["run_id"]
        names_of.setdefault(run_id, run_names(service, run_id))
        names = {k: v["name"] for k, v in names_of[run_id].items()}
        clusters.append({**member, "title": cluster_title(member["label"], names),
                         "report": service.report_href(member)})
    latest = clusters[0]["run_id"] if clusters else None
    neighbours = [{**n, "title": cluster_title(n["cluster"], {k: v["name"] for k, v in names_of.get(latest, {}).items()})
                   if n.get("cluster") is not None else ""} for n in info.get("neighbours", [])]
    return {"facts": facts, "clusters": clusters, "neighbours": neighbours,
            "image": f"/pictures/{info['pictures_id']}/picture.jpg",
            "has_file": (service.cfg.path("collections") / str(meta.get("filename", ""))).is_file()}


def screen_jpeg(service, picture_id: str) -> bytes:
    """The picture at screen size (fitting ``SCREEN_SIZE``, aspect kept), as JPEG bytes.

    Raises
    ------
    FileNotFoundError
        When the collection has no file for it (named in the message).
    """
    from sqlalchemy import select

    from iss.data.images import PictureError, decode_picture
    from iss.db import schema

    p = schema.pictures
    with service.engine.connect() as conn:
        row = conn.execute(select(p.c.filename, p.c.width, p.c.height).where(p.c.pictures_id == picture_id)).first()
    if row is None:
        raise FileNotFoundError(f"picture {picture_id!r} is not in the pictures table")
    path = service.cfg.path("collections") / row.filename
    if not path.is_file():
        raise FileNotFoundError(f"the collection has no file {path} for picture {picture_id!r} "
                                f"(run `iss sync-collections`, or check paths.collections)")
    scale = min(1.0, SCREEN_SIZE[0] / row.width, SCREEN_SIZE[1] / row.height)
    size = (max(1, round(row.width * scale)), max(1, round(row.height * scale)))
    try:
        decoded = decode_picture(path, input_size=(8, 8), thumb_size=size, max_pixels=service.max_pixels)
    except PictureError as exc:
        raise FileNotFoundError(f"{path} cannot be decoded any more ({exc.reason}): {exc.detail}") from exc
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(decoded.thumb).save(buffer, format="JPEG", quality=SCREEN_QUALITY)
    return buffer.getvalue()


def rename_cluster(service, run_id: int, label: int, name: str) -> dict[int, dict]:
    """Store a cluster's new name (empty: back to its automatic one); returns the run's names."""
    from iss.clustering.names import name_cluster

    return name_cluster(service.cache, service.engine, run_id, label, name)


def refresh_pages(service, run_id: int) -> None:
    """Re-write the static pages that show a run's names, if its reports were rendered (logged, never raised:
    it runs after the answer was sent)."""
    from iss.visualization.data import ReportError
    from iss.visualization.reports import refresh_cluster_names

    run = service.run(run_id)
    if run is None or service.report_href(run) is None:
        return
    try:
        refresh_cluster_names(service.cfg, service.engine, run_id)
    except (ReportError, OSError) as exc:
        log.warning("run %s: the report pages could not be refreshed with the new name: %s", run_id, exc)
