"""The ``populate_db`` step: validate, decode and cache every new picture; store pictures and locations.

Reads ``paths.collections`` (the pictures, in sub-folders too), ``paths.history`` and ``paths.tle``
(locations) and the ``ingest`` config section. Writes the ``pictures``, ``pictures_rejected`` and
``pictures_location`` tables, the ingest cache (``paths.cache``, :class:`ImageCache`) and
``<paths.reports>/skipped_files.csv`` (every file of the folder that is not ingested, and why).

How it stays fast and safe on 10,000 to 1,000,000 files:

- **Only new pictures are decoded.** The folder listing (names only) is compared with the ids
  in ``pictures`` (and in the cache) and with ``pictures_rejected`` (a rejected file is retried
  only if its size or mtime changed) before anything is opened.
- **All cores.** Worker processes stat, decode (JPEG draft decoding, see
  :func:`iss.data.images.decode_picture`) and resize chunks of files, and send back compact
  uint8 arrays; the parent only writes. Chunks are submitted through a bounded window, so
  memory depends on the batch size, never on the collection size.
- **Each batch is one transaction.** The parent upserts a batch's rows (pictures + rejected)
  in one transaction, then appends the pixels of the committed ids to the append-only cache.
  A crash between the two leaves ids in the database but not in the cache; the next run sees
  them missing from the cache and decodes them again (upserts are idempotent, the cache skips
  ids it already holds), so re-running always repairs a partial state.
- **Any file name, any folder depth.** Each picture keeps its path relative to the folder
  (``pictures.filename``) and gets a safe, unique, stable id (:func:`iss.data.ids.assign_ids`).
- **Nothing is left out silently.** Zero-byte, truncated, non-image, too-large (decompression
  bomb), corrupt or unreadable pictures, and every other entry of the folder (other file types,
  formats Pillow cannot read here, hidden and temporary files; see
  :mod:`iss.data.listing`) are recorded with their reason in ``pictures_rejected``, named in the
  summary and written to ``skipped_files.csv``.
"""

from __future__ import annotations

import csv
import datetime as dt
import gc
import logging
import math
import mmap
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from tqdm import tqdm

from iss.artefacts import atomic_path
from iss.compute import ComputeSettings, available_cores, open_compute, partition_size_for, step_store_url
from iss.config import Config
from iss.data.cache import ImageCache
from iss.data.ids import assign_ids, parse_timestamp, split_name
from iss.data.images import REASONS, PictureError, decode_picture
from iss.data.listing import SKIP_REASONS, is_url, list_folder, list_url, picture_extensions, stored_filename
from iss.data.locations import LocationSummary, update_locations, utc_converter
from iss.db import schema
from iss.db.queries import count, upsert
from iss.processes import exit_with_parent

log = logging.getLogger(__name__)


class IngestError(Exception):
    """The ingest cannot run at all (missing folder, bad settings)."""


# --------------------------------------------------------------------------- #
# Settings and worker side                                                    #
# --------------------------------------------------------------------------- #

@dataclass(frozen=True)
class IngestSettings:
    """What a worker needs to decode a file (sent once per worker process)."""

    folder: str
    input_size: tuple[int, int] = (48, 27)
    thumb_size: tuple[int, int] = (96, 54)
    max_pixels: int = 89_478_485
    fit: str = "stretch"
    filename_pattern: str = "%Y%m%d-%H%M%S"
    timezone: str = "UTC"


@dataclass
class ChunkResult:
    """A decoded chunk, compact for the trip back to the parent.

    ``inputs`` (k, h, w, 3) and ``thumbs`` (k, th, tw, 3) are uint8 rows of the ``k``
    accepted pictures, in the order of ``rows``; ``rows`` are ``pictures`` column tuples
    ``(id, filename, taken_at, taken_at_source, width, height, file_size, file_mtime)``;
    ``rejected`` are ``(filename, reason, detail, file_size, file_mtime)``.
    """

    rows: list[tuple]
    inputs: np.ndarray | None
    thumbs: np.ndarray | None
    rejected: list[tuple]
    slot: int | None = None  # where the pixels are in the shared buffer (then inputs/thumbs travel empty)


def _utc_from_timestamp(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc).replace(tzinfo=None)


def decode_chunk(settings: IngestSettings, items: list[tuple[str, str]],
                 out: tuple[np.ndarray, np.ndarray] | None = None, fs=None) -> ChunkResult:
    """Stat, decode and resize a chunk of ``(filename, picture_id)`` of the collection folder.

    Parameters
    ----------
    settings : IngestSettings
    items : list of (filename, picture_id), length n
        ``filename`` relative to ``settings.folder``, ``/``-separated.
    out : (inputs, thumbs), optional
        uint8 arrays of shapes (>= n, h, w, 3) and (>= n, th, tw, 3) to decode into (a slot of
        the shared buffer); accepted pictures fill their first rows, in order.
    fs : fsspec.AbstractFileSystem, optional
        Read the files through it (``settings.folder`` is then a path of that file system, as
        :func:`fsspec.core.url_to_fs` returns it); default: local files, read directly (faster).

    Returns
    -------
    ChunkResult
        Accepted pictures as arrays and rows; every failure as a rejected row (never raises
        for a bad file).
    """
    to_utc = utc_converter(settings.timezone)
    input_shape = (settings.input_size[1], settings.input_size[0], 3)
    thumb_shape = (settings.thumb_size[1], settings.thumb_size[0], 3)
    if out is None:
        inputs = np.empty((len(items), *input_shape), dtype=np.uint8)
        thumbs = np.empty((len(items), *thumb_shape), dtype=np.uint8)
    else:
        inputs, thumbs = out
    rows, rejected = [], []
    for filename, picture_id in items:
        path = os.path.join(settings.folder, filename) if fs is None else f"{settings.folder.rstrip('/')}/{filename}"
        try:
            stat = os.stat(path) if fs is None else _fs_stat(fs, path)
        except OSError as exc:
            rejected.append((filename, "unreadable", f"stat: {exc.strerror or exc}", None, None))
            continue
        if stat.st_size == 0:
            rejected.append((filename, "empty", "the file has 0 bytes", 0, stat.st_mtime))
            continue
        taken_at = parse_timestamp(split_name(filename)[0], settings.filename_pattern)
        try:
            picture = _decode_file(settings, path, fs, read_exif_datetime=taken_at is None)
        except PictureError as exc:
            rejected.append((filename, exc.reason, exc.detail[:1000], stat.st_size, stat.st_mtime))
            continue
        if taken_at is not None:
            taken_at, source = to_utc(taken_at), "filename"
        elif picture.exif_datetime is not None:
            taken_at, source = to_utc(picture.exif_datetime), "exif"
        else:
            taken_at, source = _utc_from_timestamp(stat.st_mtime), "mtime"
        k = len(rows)
        inputs[k], thumbs[k] = picture.input, picture.thumb
        rows.append((picture_id, filename, taken_at, source, picture.width, picture.height,
                     stat.st_size, stat.st_mtime))
    if out is not None:
        return ChunkResult(rows, inputs[:len(rows)], thumbs[:len(rows)], rejected)
    if len(rows) < len(items):  # compact (rejections leave unused rows)
        inputs, thumbs = inputs[:len(rows)].copy(), thumbs[:len(rows)].copy()
    return ChunkResult(rows, inputs, thumbs, rejected)


class _Stat(NamedTuple):
    st_size: int
    st_mtime: float


def _fs_stat(fs, path: str) -> _Stat:
    """Size and modification time of ``path`` on an fsspec file system (OSError when it cannot tell).

    Each file system names the time its own way (``mtime`` local, ``LastModified`` S3, ``updated``
    GCS, ``created`` in memory); 0.0 when it gives none.
    """
    try:
        info = fs.info(path)
    except OSError:
        raise
    except Exception as exc:  # object stores raise their own errors (permissions, throttling)
        raise OSError(str(exc)) from exc
    mtime = next((info[k] for k in ("mtime", "LastModified", "last_modified", "updated", "created")
                  if info.get(k) is not None), 0.0)
    if isinstance(mtime, str):
        mtime = dt.datetime.fromisoformat(mtime.replace("Z", "+00:00"))
    if isinstance(mtime, dt.datetime):
        mtime = (mtime if mtime.tzinfo else mtime.replace(tzinfo=dt.timezone.utc)).timestamp()
    return _Stat(int(info.get("size") or 0), float(mtime))


def _decode_file(settings: IngestSettings, path: str, fs, read_exif_datetime: bool):
    """:func:`decode_picture` of a local path, or of a file opened through ``fs``."""
    if fs is None:
        return decode_picture(path, settings.input_size, settings.thumb_size, settings.max_pixels,
                              fit=settings.fit, read_exif_datetime=read_exif_datetime)
    try:
        handle = fs.open(path, "rb")
    except Exception as exc:  # noqa: BLE001 - any file system's failure to open is "unreadable"
        raise PictureError("unreadable", f"open: {exc}") from exc
    with handle:
        return decode_picture(handle, settings.input_size, settings.thumb_size, settings.max_pixels,
                              fit=settings.fit, read_exif_datetime=read_exif_datetime)


def decode_partition(settings: IngestSettings, items: list[tuple[str, str]], store_url: str, partition: int,
                     partition_size: int) -> ChunkResult:
    """A Dask task: decode a partition read through fsspec, write its pixels to the partition store.

    Parameters
    ----------
    settings : IngestSettings
        ``folder`` is a local path or an fsspec URL that this worker can read.
    items : list of (filename, picture_id)
    store_url : str
        The :class:`~iss.data.partition_store.PartitionStore` of the run.
    partition, partition_size : int

    Returns
    -------
    ChunkResult
        Rows and rejections only (``slot`` = the partition); the pixels are in the store.
        Idempotent: a retry writes the same chunk again.
    """
    import fsspec

    from iss.data.partition_store import PartitionStore

    fs, root = fsspec.core.url_to_fs(settings.folder)
    result = decode_chunk(IngestSettings(**{**settings.__dict__, "folder": root}), items, fs=fs)
    PartitionStore(store_url, partition_size).write(partition, inputs=result.inputs, thumbs=result.thumbs)
    result.inputs = result.thumbs = None
    result.slot = partition
    return result


class PixelSlots:
    """Shared memory where forked workers put decoded pixels, so arrays are never pickled.

    An anonymous shared mapping created before the workers are forked is the same memory in
    the parent and in every worker: a worker decodes a chunk straight into its slot and
    returns only the rows; the parent appends the slot's rows to the cache and frees it.
    Sending ~19 KB of pixels per picture through the pool's pipe instead costs ~40 us of
    CPU per picture (pickling, pipe, unpickling), ~4% of the decode itself.
    """

    def __init__(self, n_slots: int, chunk_size: int, input_shape: tuple, thumb_shape: tuple):
        self.chunk_size, self.input_shape, self.thumb_shape = chunk_size, input_shape, thumb_shape
        self.input_bytes = chunk_size * int(np.prod(input_shape))
        self.slot_bytes = self.input_bytes + chunk_size * int(np.prod(thumb_shape))
        self.buffer = mmap.mmap(-1, n_slots * self.slot_bytes)  # MAP_SHARED | MAP_ANONYMOUS
        self.free = deque(range(n_slots))

    def arrays(self, slot: int, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(inputs, thumbs)`` views of a slot's first ``n`` rows."""
        n = self.chunk_size if n is None else n
        start = slot * self.slot_bytes
        inputs = np.ndarray((n, *self.input_shape), np.uint8, self.buffer, start)
        thumbs = np.ndarray((n, *self.thumb_shape), np.uint8, self.buffer, start + self.input_bytes)
        return inputs, thumbs

    def close(self) -> None:
        try:
            self.buffer.close()
        except BufferError:  # a view is still alive; the mapping goes with the last one
            pass


_WORKER_SETTINGS: IngestSettings | None = None
_SHARED_SLOTS: PixelSlots | None = None  # set in the parent before forking; inherited by workers


def _init_worker(settings: IngestSettings, parent_pid: int | None) -> None:
    global _WORKER_SETTINGS
    exit_with_parent(parent_pid)  # a killed step leaves no worker behind
    _WORKER_SETTINGS = settings


def _worker_decode_chunk(task: tuple[int | None, list[tuple[str, str]]]) -> ChunkResult:
    slot, items = task
    if slot is None:
        return decode_chunk(_WORKER_SETTINGS, items)
    result = decode_chunk(_WORKER_SETTINGS, items, out=_SHARED_SLOTS.arrays(slot, len(items)))
    result.inputs = result.thumbs = None  # the pixels stay in shared memory
    result.slot = slot
    return result


# --------------------------------------------------------------------------- #
# Summary                                                                     #
# --------------------------------------------------------------------------- #

@dataclass
class IngestSummary:
    """What an ingest run did.

    Attributes
    ----------
    listed : int
        Picture files in the collection folder and its sub-folders (by extension).
    folders : int
        Folders searched.
    skipped : dict of str to int
        Other entries of the folder by reason (:data:`iss.data.listing.SKIP_REASONS`): not read.
    skipped_files : list of (filename, reason, detail)
        Every one of them, named on every run.
    known : int
        Pictures already in the database and the cache: skipped without opening them.
    known_rejected : int
        Files rejected before and unchanged since: skipped.
    decoded : int
        Files opened and decoded in this run (0 on a re-run with no new files).
    accepted : int
        Pictures added (or repaired) in this run.
    rejected : dict of str to int
        Rejections of this run by reason.
    rejected_files : list of (filename, reason, detail)
        Every file rejected in this run.
    batches : int
        Database transactions written.
    workers : int
        Decoding processes used (Dask workers when ``scheduler`` is not ``inprocess``).
    scheduler : str
        Where the decoding ran: ``inprocess`` (this machine's fork pool, or this process),
        ``synchronous``, ``local`` (a LocalCluster) or the scheduler address.
    partitions : int
        Dask tasks (partitions of the files to decode); 0 in process.
    seconds : float
        Wall time of the pictures part (listing to last commit).
    locations : LocationSummary or None
    """

    folder: str = ""
    listed: int = 0
    folders: int = 1
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_files: list[tuple[str, str, str]] = field(default_factory=list)
    known: int = 0
    known_rejected: int = 0
    decoded: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    rejected_files: list[tuple[str, str, str]] = field(default_factory=list)
    batches: int = 0
    workers: int = 1
    scheduler: str = "inprocess"
    partitions: int = 0
    seconds: float = 0.0
    total_pictures: int = 0
    skipped_csv: str = ""
    locations: LocationSummary | None = None

    @property
    def pictures_per_s(self) -> float:
        """Files decoded per second of wall time (0 when nothing was decoded)."""
        return self.decoded / self.seconds if self.decoded and self.seconds > 0 else 0.0

    def format(self, max_files: int = 20) -> str:
        """The human-readable summary printed at the end of the step."""
        n_rejected, n_skipped = sum(self.rejected.values()), len(self.skipped_files)
        lines = [
            f"ingest of {self.folder}: {self.listed} picture files listed in {self.folders} folder"
            f"{'s' if self.folders != 1 else ''}, {n_skipped} other entries not read",
            f"  skipped without decoding: {self.known} already ingested, {self.known_rejected} rejected before "
            f"and unchanged",
            f"  decoded {self.decoded} in {self.seconds:.1f} s ({self.pictures_per_s:.0f} pictures/s, "
            f"{self.workers} worker{'s' if self.workers != 1 else ''}, {self.batches} batches"
            + (f", Dask {self.scheduler} in {self.partitions} partitions)" if self.partitions else ")"),
            f"  accepted {self.accepted}, rejected {n_rejected}" + _by_reason(self.rejected),
            f"  pictures in the database: {self.total_pictures}",
        ]
        for filename, reason, detail in self.rejected_files[:max_files]:
            lines.append(f"    rejected {filename}: {reason} ({detail})")
        if n_skipped:
            lines.append(f"  not read: {n_skipped}" + _by_reason(self.skipped))
            for filename, reason, detail in self.skipped_files[:max_files]:
                lines.append(f"    not read {filename}: {reason} ({detail})")
        hidden = max(0, len(self.rejected_files) - max_files) + max(0, n_skipped - max_files)
        if hidden or self.known_rejected:
            lines.append(f"  every file not ingested, with its reason: {self.skipped_csv or 'table pictures_rejected'}"
                         + (f" ({hidden} more than listed here)" if hidden else ""))
        if self.locations is not None:
            loc = self.locations
            lines.append(f"  locations: {loc.history_rows} from history ({loc.history_lines} lines, "
                         f"{loc.history_duplicates} duplicate ids, {loc.history_skipped} malformed lines skipped), "
                         f"{loc.tle_rows} from TLE, {loc.written} rows written")
            for warning in loc.warnings[:5]:
                lines.append(f"    {warning}")
            if len(loc.warnings) > 5:
                lines.append(f"    ... and {len(loc.warnings) - 5} more location warnings")
        return "\n".join(lines)


# --------------------------------------------------------------------------- #
# Parent side                                                                 #
# --------------------------------------------------------------------------- #

def _by_reason(counts: dict[str, int]) -> str:
    return (": " + ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))) if counts else ""


def collection_location(cfg: Config) -> str:
    """``paths.collections`` as an absolute folder, or as the fsspec URL it is (``s3://bucket/frames``).

    A URL source is listed and read through fsspec, by Dask tasks (``s3://`` and ``gs://`` need the
    s3fs or gcsfs plug-in); ``file://`` is a local folder.
    """
    raw = str(cfg.get("paths.collections"))
    if is_url(raw):
        return raw
    return str(cfg.path("collections")) if not raw.startswith("file://") else str(Path(raw[len("file://"):]))


def settings_from_config(cfg: Config) -> IngestSettings:
    """The worker settings of ``cfg`` (``ingest`` section and ``paths.collections``)."""
    fit = cfg.get("ingest.fit")
    if fit not in ("stretch", "crop"):
        raise IngestError(f"{cfg.source}: ingest.fit is {fit!r}; expected 'stretch' or 'crop'")
    sizes = []
    for key in ("ingest.input_size", "ingest.thumb_size"):
        value = cfg.get(key)
        if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(int(v) > 0 for v in value)):
            raise IngestError(f"{cfg.source}: {key} is {value!r}; expected [width, height], e.g. [48, 27]")
        sizes.append((int(value[0]), int(value[1])))
    utc_converter(cfg.get("ingest.timezone"))  # fail early on an unknown zone
    return IngestSettings(folder=collection_location(cfg), input_size=sizes[0], thumb_size=sizes[1],
                          max_pixels=int(cfg.get("ingest.max_pixels")), fit=fit,
                          filename_pattern=str(cfg.get("ingest.filename_pattern") or ""),
                          timezone=str(cfg.get("ingest.timezone")))


def _stat_pair(stat: Callable[[str], os.stat_result | _Stat], name: str) -> tuple[int | None, float | None]:
    try:
        result = stat(name)
        return result.st_size, result.st_mtime
    except OSError:
        return None, None


# Rejections decided from the folder listing alone, re-decided on every run without opening the
# file (bad_id and duplicate_id: from versions that refused some file names).
_NAME_REASONS = ("bad_id", "duplicate_id", *SKIP_REASONS)


def _same_file(recorded: tuple, current: tuple) -> bool:
    size, mtime = recorded
    return current[0] is not None and size == current[0] and mtime is not None and abs(mtime - current[1]) < 1e-3


class _BatchWriter:
    """Accumulates chunk results and writes them a batch (= one transaction) at a time."""

    def __init__(self, engine: Engine, cache: ImageCache, batch_size: int, previously_rejected: set[str],
                 summary: IngestSummary, release=None):
        self.engine, self.cache, self.batch_size = engine, cache, batch_size
        self.previously_rejected = previously_rejected
        self.summary = summary
        self.release = release  # called with each written chunk (frees its shared-memory slot)
        self.chunks: list[ChunkResult] = []
        self.pending = 0

    def add(self, chunk: ChunkResult) -> None:
        self.chunks.append(chunk)
        self.pending += len(chunk.rows) + len(chunk.rejected)
        if self.pending >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.chunks:
            return
        chunks, self.chunks, self.pending = self.chunks, [], 0
        rows = [row for chunk in chunks for row in chunk.rows]
        rejected = [row for chunk in chunks for row in chunk.rejected]
        now = dt.datetime.now().replace(microsecond=0)
        # Cache rows: ids already cached keep theirs; new ids get the next rows, in order.
        new_positions, cache_index, next_row = [], [], len(self.cache)
        for k, row in enumerate(rows):
            if row[0] in self.cache:
                cache_index.append(int(self.cache.index_of([row[0]])[0]))
            else:
                new_positions.append(k)
                cache_index.append(next_row)
                next_row += 1
        picture_rows = [dict(pictures_id=r[0], filename=r[1], taken_at=r[2], taken_at_source=r[3], width=r[4],
                             height=r[5], file_size=r[6], file_mtime=r[7], cache_index=index, ingested_at=now)
                        for r, index in zip(rows, cache_index)]
        rejected_rows = [dict(filename=r[0], reason=r[1], detail=r[2], file_size=r[3], file_mtime=r[4],
                              rejected_at=now) for r in rejected]
        fixed = [r[1] for r in rows if r[1] in self.previously_rejected]
        with self.engine.begin() as conn:  # the whole batch, or nothing
            upsert(conn, schema.pictures, picture_rows)
            upsert(conn, schema.pictures_rejected, rejected_rows)
            if fixed:
                conn.execute(delete(schema.pictures_rejected).where(schema.pictures_rejected.c.filename.in_(fixed)))
        # Only committed ids reach the cache (a crash here is repaired by the next run). Chunk by
        # chunk, straight from the arrays the workers sent: the cache skips ids it already holds,
        # in the same order as the cache_index computed above.
        if new_positions:
            for chunk in chunks:
                if chunk.rows:
                    self.cache.append([row[0] for row in chunk.rows], chunk.inputs, chunk.thumbs)
        if self.release is not None:
            for chunk in chunks:
                self.release(chunk)
        self.summary.batches += 1
        self.summary.accepted += len(rows)
        for filename, reason, detail, *_ in rejected:
            self.summary.rejected[reason] = self.summary.rejected.get(reason, 0) + 1
            self.summary.rejected_files.append((filename, reason, detail))


def _pool_context(method: str = "fork"):
    """The multiprocessing context for the decoding workers.

    ``fork`` (default where it exists) starts a worker in ~10 ms and needs no ``__main__``
    guard; the workers only run PIL and numpy, so locks held by other threads of the parent
    (TensorFlow, drivers) are never touched in them. ``forkserver`` / ``spawn`` start clean
    interpreters (~0.2-0.6 s, and scripts need ``if __name__ == "__main__":``).
    """
    methods = multiprocessing.get_all_start_methods()
    if method not in ("fork", "forkserver", "spawn"):
        raise IngestError(f"ingest.start_method is {method!r}; expected fork, forkserver or spawn")
    if method not in methods:
        method = "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["iss.data.ingest"])
    return context


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _decode_in_pool(settings: IngestSettings, todo: list, chunk_size: int, workers: int, batch_size: int,
                    writer: _BatchWriter, bar, start_method: str, cache: ImageCache) -> None:
    """Decode ``todo`` in worker processes, feeding results in order to ``writer``."""
    global _SHARED_SLOTS
    context = _pool_context(start_method)
    window_size = workers * 4  # chunks in flight: memory ~ window x chunk, never the collection
    slots = None
    if context.get_start_method() == "fork":
        # Slots for the chunks in flight plus those waiting in the writer for their batch.
        n_slots = window_size + math.ceil(batch_size / chunk_size) + 2
        slots = PixelSlots(n_slots, chunk_size, cache.input_shape, cache.thumb_shape)

        def release(chunk: ChunkResult) -> None:
            if chunk.slot is not None:
                chunk.inputs = chunk.thumbs = None
                slots.free.append(chunk.slot)

        writer.release = release
    _SHARED_SLOTS = slots
    gc.freeze()  # forked workers then share the parent's objects instead of copying their pages
    window: deque[Future] = deque()
    try:
        parent = None if context.get_start_method() == "forkserver" else os.getpid()
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                 initargs=(settings, parent)) as pool:
            try:
                def receive() -> None:
                    result = window.popleft().result()
                    if result.slot is not None:
                        result.inputs, result.thumbs = slots.arrays(result.slot, len(result.rows))
                    writer.add(result)
                    bar.update(len(result.rows) + len(result.rejected))

                for items in _chunks(todo, chunk_size):
                    if len(window) >= window_size:
                        receive()
                    slot = slots.free.popleft() if slots is not None else None
                    window.append(pool.submit(_worker_decode_chunk, (slot, items)))
                while window:
                    receive()
                writer.flush()  # while the slots are still mapped
            except BaseException:
                for future in window:
                    future.cancel()
                raise
    finally:
        gc.unfreeze()
        _SHARED_SLOTS = None
        writer.release = None
        if slots is not None:
            writer.chunks = [c for c in writer.chunks if c.slot is None]  # unwritten views die with the map
            slots.close()


def _decode_on_dask(settings: IngestSettings, todo: list, compute: ComputeSettings, scheduler: str,
                    writer: _BatchWriter, bar, cache: ImageCache, store_url: str, summary: IngestSummary) -> None:
    """Decode ``todo`` as Dask tasks (:func:`decode_partition`), one per partition; write in partition order.

    The workers write pixels to a :class:`~iss.data.partition_store.PartitionStore` and return
    rows; this process feeds each partition, in order, to ``writer`` (batched upserts, then the
    cache), so the cache rows come out in the same order as the single-machine path and a
    partition retried after a lost worker is written once. The store is removed at the end.
    """
    from iss.data.partition_store import PartitionStore

    with open_compute(compute, scheduler) as session:
        summary.scheduler, summary.workers = session.kind, session.workers
        row_bytes = int(np.prod(cache.input_shape)) + int(np.prod(cache.thumb_shape))  # the pixels written
        size = partition_size_for(len(todo), session.workers, compute.partition_size, row_bytes)
        partitions = list(_chunks(todo, size))
        summary.partitions = len(partitions)
        store = PartitionStore.create(store_url, len(partitions), size, {"inputs": (cache.input_shape, "uint8"),
                                                                          "thumbs": (cache.thumb_shape, "uint8")})
        log.info("ingest: %d pictures in %d partitions of %d on %s (workers: %d), pixels through %s", len(todo),
                 len(partitions), size, session.kind, session.workers, store_url)
        tasks = [(settings, items, store_url, p, size) for p, items in enumerate(partitions)]
        done: dict[int, ChunkResult] = {}
        following = 0
        for p, result in session.map_unordered(decode_partition, tasks, key="ingest-decode"):
            done[p] = result
            while following in done:  # in partition order: the cache rows do not depend on timing
                ready = done.pop(following)
                ready.inputs, ready.thumbs = store.read(following, len(ready.rows), "inputs", "thumbs")
                ready.slot = None
                writer.add(ready)
                bar.update(len(ready.rows) + len(ready.rejected))
                following += 1
        writer.flush()
    store.remove()


def ingest_pictures(cfg: Config, engine: Engine, progress: bool = True) -> IngestSummary:
    """Ingest the new pictures of ``paths.collections`` (no locations; see :func:`populate_db`).

    Returns
    -------
    IngestSummary
    """
    began = time.perf_counter()
    settings = settings_from_config(cfg)
    remote = is_url(settings.folder)
    folder = settings.folder if remote else Path(settings.folder)
    if not remote and not folder.is_dir():
        raise IngestError(f"collection folder {folder} (paths.collections) does not exist; "
                          f"run `make sync_collections` first, or point paths.collections at your pictures")
    batch_size = int(cfg.get("ingest.batch_size"))
    if batch_size < 1:
        raise IngestError(f"{cfg.source}: ingest.batch_size is {batch_size}; expected at least 1")
    workers_setting = int(cfg.get("ingest.workers"))
    chunk_limit = int(cfg.get("ingest.chunk_size"))
    extensions = picture_extensions(cfg.get("ingest.extensions"))
    cache = ImageCache(cfg.path("cache"), settings.input_size, settings.thumb_size)
    summary = IngestSummary(folder=str(folder))

    if remote:
        try:
            listing = list_url(folder, extensions, recursive=bool(cfg.get("ingest.recursive")))
        except FileNotFoundError as exc:
            raise IngestError(f"{exc} (paths.collections); check the URL, and install its fsspec plug-in "
                              f"(s3fs for s3://, gcsfs for gs://)") from None
        import fsspec

        fs, root = fsspec.core.url_to_fs(folder)  # once: previously rejected files are stat'ed below
        stat_file = lambda name: _fs_stat(fs, f"{root.rstrip('/')}/{name}")  # noqa: E731
    else:
        listing = list_folder(folder, extensions, recursive=bool(cfg.get("ingest.recursive")))
        stat_file = lambda name: (folder / name).stat()  # noqa: E731
    summary.listed, summary.folders = len(listing.pictures), listing.folders
    with engine.connect() as conn:
        db_pictures = {r.filename: r.pictures_id for r in conn.execute(
            select(schema.pictures.c.pictures_id, schema.pictures.c.filename))}
        db_rejected = {r.filename: (r.file_size, r.file_mtime, r.reason) for r in conn.execute(
            select(schema.pictures_rejected.c.filename, schema.pictures_rejected.c.file_size,
                   schema.pictures_rejected.c.file_mtime, schema.pictures_rejected.c.reason))}
    _record_skipped(engine, listing, db_rejected, summary)

    # Decide, from names only, what needs decoding (stat only for files rejected before).
    ids = assign_ids(listing.pictures, known=db_pictures)
    todo: list[tuple[str, str]] = []
    for name in listing.pictures:
        picture_id = ids[name]
        if name in db_pictures and picture_id in cache:
            summary.known += 1
        elif (name in db_rejected and db_rejected[name][2] not in _NAME_REASONS
              and _same_file(db_rejected[name][:2], _stat_pair(stat_file, name))):
            summary.known_rejected += 1  # its content was bad and has not changed: no need to look again
        else:
            todo.append((name, picture_id))

    writer = _BatchWriter(engine, cache, batch_size, set(db_rejected), summary)
    summary.decoded = len(todo)
    compute = ComputeSettings.from_config(cfg)
    scheduler = compute.resolve(len(todo), remote=remote)  # a URL is read by Dask tasks only
    if todo and scheduler != "inprocess":
        bar = tqdm(total=len(todo), unit="pic", desc="ingest", disable=not progress, smoothing=0.1)
        try:
            _decode_on_dask(settings, todo, compute, scheduler, writer, bar, cache,
                            step_store_url(cfg, compute.store, "ingest"), summary)
        finally:
            bar.close()
    elif todo:
        workers = workers_setting if workers_setting > 0 else available_cores()
        # Chunks small enough that every worker gets ~16 of them (the last one finishes soon
        # after the others), big enough that per-chunk overhead stays negligible.
        chunk_size = max(1, min(chunk_limit, math.ceil(len(todo) / (max(1, workers) * 16))))
        n_chunks = math.ceil(len(todo) / chunk_size)
        workers = max(1, min(workers, n_chunks))
        summary.workers = workers
        bar = tqdm(total=len(todo), unit="pic", desc="ingest", disable=not progress, smoothing=0.1)
        try:
            if workers == 1:
                for items in _chunks(todo, chunk_size):
                    writer.add(decode_chunk(settings, items))
                    bar.update(len(items))
            else:
                _decode_in_pool(settings, todo, chunk_size, workers, batch_size, writer, bar,
                                str(cfg.get("ingest.start_method")), cache)
        finally:
            bar.close()
    writer.flush()
    with engine.connect() as conn:
        summary.total_pictures = count(conn, schema.pictures)
    summary.skipped_csv = str(write_skipped_csv(engine, cfg.path("reports") / SKIPPED_CSV))
    summary.seconds = time.perf_counter() - began
    return summary


SKIPPED_CSV = "skipped_files.csv"


def _record_skipped(engine: Engine, listing, db_rejected: dict, summary: IngestSummary) -> None:
    """Record the folder's entries that are not pictures (new or changed reason), and forget the rows of files gone."""
    now = dt.datetime.now().replace(microsecond=0)
    skipped = [(stored_filename(name), reason, detail) for name, reason, detail in listing.skipped]
    rows = [dict(filename=name, reason=reason, detail=detail, file_size=None, file_mtime=None, rejected_at=now)
            for name, reason, detail in skipped if name not in db_rejected or db_rejected[name][2] != reason]
    present = set(listing.pictures) | {name for name, _, _ in skipped}
    gone = [name for name in db_rejected if name not in present]
    with engine.begin() as conn:
        upsert(conn, schema.pictures_rejected, rows)
        for start in range(0, len(gone), 500):
            conn.execute(delete(schema.pictures_rejected).where(
                schema.pictures_rejected.c.filename.in_(gone[start:start + 500])))
    for name in gone:
        del db_rejected[name]
    summary.skipped_files = list(listing.skipped)
    for _, reason, _ in listing.skipped:
        summary.skipped[reason] = summary.skipped.get(reason, 0) + 1


def write_skipped_csv(engine: Engine, path: Path) -> Path:
    """Write every file of the collection that is not ingested (``pictures_rejected``) to a CSV file.

    Columns ``filename, reason, detail, rejected_at``, sorted by file name; UTF-8 with a byte-order
    mark so spreadsheets read accented names right. Replaced atomically.
    """
    table = schema.pictures_rejected
    with engine.connect() as conn:
        rows = conn.execute(select(table.c.filename, table.c.reason, table.c.detail, table.c.rejected_at)
                            .order_by(table.c.filename)).all()
    with atomic_path(path) as partial, partial.open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "reason", "detail", "rejected_at"])
        writer.writerows(rows)
    return path


def populate_db(cfg: Config, engine: Engine | None = None, progress: bool = True) -> IngestSummary:
    """Ingest new pictures (validated, decoded, cached) and their locations into the database.

    Parameters
    ----------
    cfg : Config
        Uses ``paths.collections``, ``paths.cache``, ``paths.history``, ``paths.tle`` and the
        ``ingest`` section.
    engine : Engine, optional
        Default: ``get_engine(cfg.database_url)`` (disposed at the end).
    progress : bool, default=True
        Show a progress bar.

    Returns
    -------
    IngestSummary
        Counts, rejected files by reason, pictures per second, and the locations summary.
    """
    from iss.db.engine import get_engine

    own_engine = engine is None
    engine = engine or get_engine(cfg.database_url)
    try:
        summary = ingest_pictures(cfg, engine, progress=progress)
        summary.locations = update_locations(cfg, engine)
    finally:
        if own_engine:
            engine.dispose()
    rejected = sum(summary.rejected.values())
    if rejected:
        log.warning("%d file(s) rejected: %s", rejected,
                    ", ".join(f"{r} {n} ({REASONS.get(r, r)})" for r, n in sorted(summary.rejected.items())))
    return summary


