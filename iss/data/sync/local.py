"""``sync.kind: local``: a folder on this machine, with its sub-folders (``ingest.recursive``).

Files are copied in parallel threads, each to the same relative path; every other file is named
with the reason it is not copied (:mod:`iss.data.listing`).
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from iss.artefacts import atomic_path
from iss.data.listing import list_folder
from iss.data.sync.base import SyncError, SyncRequest, SyncSource, SyncSummary, bounded, sync_extensions


def _unchanged(src: os.stat_result, dst: Path) -> bool:
    try:
        current = dst.stat()
    except OSError:
        return False
    # Like rsync's quick check: same size and same mtime to the second.
    return current.st_size == src.st_size and int(current.st_mtime) == int(src.st_mtime)


def copy_file(src: Path, dst: Path) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` through a temporary name unless unchanged; ``(state, bytes)``."""
    stat = src.stat()
    if _unchanged(stat, dst):
        return "unchanged", 0
    with atomic_path(dst) as partial:
        shutil.copyfile(src, partial)
        os.utime(partial, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return "transferred", stat.st_size


def sync_local(source: Path, subdir: str, destination: Path, extras: dict[str, tuple[str, Path]],
               extensions: tuple[str, ...] | None = None, workers: int = 4, progress: bool = True,
               recursive: bool = True) -> SyncSummary:
    """Copy new or changed pictures (same relative paths) from a local folder (threads), then the extra files."""
    summary = SyncSummary("local", str(source), str(destination))
    folder = source / subdir if subdir else source
    if not folder.is_dir():
        plain = (f"; for a plain folder of pictures set sync.collections_subdir: \"\" (it is {subdir!r})"
                 if subdir and source.is_dir() else "")
        raise SyncError(f"sync source folder {folder} does not exist; set sync.source (or paths.source) to the "
                        f"folder holding '{folder.name}/'{plain}, or run `make generate_demo` for the demo")
    listing = list_folder(folder, sync_extensions() if extensions is None else extensions, recursive=recursive)
    names, summary.not_copied = listing.pictures, listing.skipped
    summary.listed = len(names)
    destination.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max(1, workers)) as pool, \
            tqdm(total=len(names), unit="file", desc="sync", disable=not progress) as bar:
        tasks = ((folder / name, destination / name) for name in names)
        for (src, _), future in bounded(pool, copy_file, tasks, 8 * max(1, workers)):
            bar.update(1)
            try:
                state, size = future.result()
            except OSError as exc:
                summary.failed += 1
                summary.errors.append(f"{src.relative_to(folder)}: {exc}")
                continue
            summary.transferred += state == "transferred"
            summary.skipped += state == "unchanged"
            summary.bytes += size
    for label, (relative, target) in extras.items():
        src = source / relative
        if not src.is_file():
            summary.extras[label] = "missing"
            continue
        try:
            summary.extras[label] = copy_file(src, target)[0]
        except OSError as exc:
            summary.extras[label] = "failed"
            summary.errors.append(f"{label} {src}: {exc}")
    return summary


class LocalSource(SyncSource):
    """A folder on this machine (a relative ``sync.source`` is relative to the project root)."""

    def sync(self, request: SyncRequest) -> SyncSummary:
        return sync_local(request.local_path(), request.subdir, request.destination, request.extras,
                          request.extensions, request.workers, request.progress, request.recursive)
