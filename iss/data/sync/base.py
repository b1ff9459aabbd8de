"""What every sync transport shares: the interface, the request it gets and the summary it returns.

A transport is a :class:`SyncSource` subclass in its own module of :mod:`iss.data.sync`, registered
by one line in :data:`iss.data.sync.TRANSPORTS`; its :meth:`SyncSource.sync` brings the pictures
(and the extra files) of ``request.source`` into ``request.destination`` and counts what it did
in a :class:`SyncSummary`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from iss.config import Config
from iss.data.listing import PICTURE_LIKE_EXTENSIONS, picture_extensions


class SyncError(Exception):
    """The source cannot be reached or read at all."""


@dataclass
class SyncSummary:
    """What a sync run did.

    Attributes
    ----------
    listed : int
        Picture files at the source.
    transferred : int
        Files copied or downloaded (new or changed).
    skipped : int
        Files already present and unchanged.
    failed : int
        Files that could not be transferred (see ``errors``); a re-run retries them.
    bytes : int
        Bytes transferred.
    extras : dict of str to str
        ``history`` / ``labels`` -> ``transferred | unchanged | missing | failed``.
    not_copied : list of (str, str, str)
        ``(relative path, reason, detail)`` of every other entry at a local source.
    """

    kind: str
    source: str
    destination: str
    listed: int = 0
    transferred: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)
    extras: dict[str, str] = field(default_factory=dict)
    not_copied: list[tuple[str, str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def format(self, max_errors: int = 10) -> str:
        """The human-readable summary printed at the end of the step."""
        lines = [f"sync ({self.kind}) {self.source} -> {self.destination}",
                 f"  {self.listed} pictures at the source: {self.transferred} transferred "
                 f"({self.bytes / 1e6:.1f} MB), {self.skipped} unchanged, {self.failed} failed, "
                 f"in {self.seconds:.1f} s"]
        if self.extras:
            lines.append("  " + ", ".join(f"{name}: {state}" for name, state in self.extras.items()))
        lines += [f"    {error}" for error in self.errors[:max_errors]]
        if len(self.errors) > max_errors:
            lines.append(f"    ... and {len(self.errors) - max_errors} more errors")
        if self.not_copied:
            lines.append(f"  not copied: {len(self.not_copied)} other entries")
            lines += [f"    {name}: {reason} ({detail})" for name, reason, detail in self.not_copied[:max_errors]]
            if len(self.not_copied) > max_errors:
                lines.append(f"    ... and {len(self.not_copied) - max_errors} more")
        return "\n".join(lines)


@dataclass(frozen=True)
class SyncRequest:
    """What to sync, read once from the config by :func:`iss.data.sync.sync_collections`.

    Attributes
    ----------
    source : str
        ``sync.source`` (default ``paths.source``) as written: a folder, ``host:path``, a URL...
    subdir : str
        ``sync.collections_subdir``: the pictures' folder under ``source`` ("" = ``source`` itself).
    destination : Path
        ``paths.collections``.
    extras : dict of str to (str, Path)
        ``{"history": (path relative to source, local file), "labels": (...)}``: the files other
        than pictures, each optional at the source.
    extensions : tuple of str
        Picture extensions to transfer (:func:`sync_extensions`).
    recursive : bool
        ``ingest.recursive``: also the pictures of sub-folders, to the same relative paths.
    workers : int
        ``sync.workers``: parallel transfers.
    progress : bool
        Show a progress bar.
    cfg : Config
        For a transport's own keys (``sync.ssh``, ``sync.timeout``...) and the file named in errors.
    """

    source: str
    subdir: str
    destination: Path
    extras: dict[str, tuple[str, Path]]
    extensions: tuple[str, ...]
    recursive: bool
    workers: int
    progress: bool
    cfg: Config

    def local_path(self, text: str | None = None) -> Path:
        """``text`` (default ``source``) as a local path; a relative one is relative to the project root."""
        path = Path(self.source if text is None else text).expanduser()
        return path if path.is_absolute() else self.cfg.root / path


class SyncSource(ABC):
    """One way of reaching a source (a ``sync.kind``): subclass it in a module of its own and add one
    line to :data:`iss.data.sync.TRANSPORTS`.

    A transport writes each file to a hidden temporary name in the destination folder
    (:func:`partial_name`) and renames it when complete, skips files already present and unchanged,
    counts a file it cannot transfer in the summary (a re-run retries it) and raises
    :class:`SyncError` only when the source cannot be reached or listed at all.
    """

    @abstractmethod
    def sync(self, request: SyncRequest) -> SyncSummary:
        """Bring new and changed pictures, then ``request.extras``, into ``request.destination``."""


def sync_extensions(setting="auto") -> tuple[str, ...]:
    """Extensions copied for an ``ingest.extensions`` setting: what the ingest reads, and with ``auto`` also
    the picture formats it cannot read here (HEIC, raw...), so the ingest names them and reads them once a
    plug-in is installed."""
    return tuple(sorted(set(picture_extensions(setting)) | (PICTURE_LIKE_EXTENSIONS if setting == "auto" else set())))


def bounded(pool: ThreadPoolExecutor, function, tasks, limit: int):
    """Run ``function(*task)`` for each task with at most ``limit`` in flight (a million-file
    collection must not mean a million pending futures); yield ``(task, future)`` as they finish."""
    pending: dict = {}
    for task in tasks:
        pending[pool.submit(function, *task)] = task
        if len(pending) >= limit:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future
    while pending:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            yield pending.pop(future), future


def partial_name(final: Path) -> Path:
    """The hidden temporary name a file is written to before it is renamed to ``final``."""
    return final.with_name(f".{final.name}.part")
