"""The ``sync_collections`` step: bring new pictures (and the history file) from a source into ``data/raw``.

Reads the ``sync`` config section. Writes ``paths.collections`` (pictures), ``paths.history``
and, when the source has one, ``paths.labels`` (the demo's evaluation labels).

A source (``sync.source``, default ``paths.source``) is a folder laid out as::

    <source>/<sync.collections_subdir>/**/*.jpg  the pictures, in sub-folders too (default subdir: collections)
    <source>/<sync.history_file>                 locations (default history/history.txt), optional
    <source>/<sync.labels_file>                  evaluation labels (default labels.csv), optional

reached by the transport ``sync.kind`` names in :data:`TRANSPORTS`, one module each:

``local`` (:mod:`iss.data.sync.local`)
    A folder on this machine, with its sub-folders, copied in parallel threads.
``rsync`` (:mod:`iss.data.sync.rsync`)
    ``user@host:path`` over ssh, or a local path: one resumable rsync run.
``http`` (:mod:`iss.data.sync.http`)
    An index page or a list file of picture URLs: conditional, resumable downloads.
``none`` (:mod:`iss.data.sync.none`)
    Nothing to do: ``paths.collections`` already holds the pictures.

In every case a file is written to a hidden temporary name in the destination folder
(:func:`iss.artefacts.atomic_path`; ``.<name>.part`` for a download, which resumes from it) and
renamed when complete, so a partial file never enters the collection.

A new transport is a :class:`SyncSource` subclass in a new module, plus one line in
:data:`TRANSPORTS` (see the README's developer guide).
"""

from __future__ import annotations

import logging
import time

from iss.config import Config
from iss.data.sync.base import SyncError, SyncRequest, SyncSource, SyncSummary, partial_name, sync_extensions
from iss.data.sync.http import (MANIFEST_NAME, IncompleteDownload, download, parse_index, parse_list_file,
                                sync_http)
from iss.data.sync.local import copy_file, sync_local
from iss.data.sync.rsync import RSYNC_PARTIAL_DIR, is_remote, rsync_command, sync_rsync
from iss.registries import load_entry

log = logging.getLogger(__name__)

# sync.kind -> "module:class" of its SyncSource (imported when used); the config schema and the
# error for an unknown kind list these keys, in this order
TRANSPORTS: dict[str, str] = {
    "local": "iss.data.sync.local:LocalSource",
    "rsync": "iss.data.sync.rsync:RsyncSource",
    "http": "iss.data.sync.http:HttpSource",
    "none": "iss.data.sync.none:NoSource",
}


def transport(kind: str) -> SyncSource:
    """A new instance of the transport registered for ``kind`` in :data:`TRANSPORTS`."""
    return load_entry(TRANSPORTS[kind])()


def sync_collections(cfg: Config, progress: bool = True) -> SyncSummary:
    """Bring new and changed pictures, the history file and the labels from the configured source.

    Parameters
    ----------
    cfg : Config
        Uses the ``sync`` section, ``paths.source`` (default source), ``paths.collections``,
        ``paths.history``, ``paths.labels``, ``ingest.extensions`` and ``ingest.recursive``.
    progress : bool, default=True

    Returns
    -------
    SyncSummary

    Raises
    ------
    SyncError
        When the source cannot be reached or listed at all (single failed files are only
        counted in the summary; a re-run retries them).
    """
    began = time.perf_counter()
    kind = str(cfg.get("sync.kind"))
    if kind not in TRANSPORTS:
        raise SyncError(f"{cfg.source}: sync.kind is {kind!r}; expected one of {', '.join(TRANSPORTS)}")
    extras = {}
    for label, key, target in (("history", "sync.history_file", "history"), ("labels", "sync.labels_file", "labels")):
        relative = str(cfg.get(key) or "")
        if relative:
            extras[label] = (relative, cfg.path(target))
    request = SyncRequest(
        source=str(cfg.get("sync.source") or "") or str(cfg.get("paths.source")),
        subdir=str(cfg.get("sync.collections_subdir") or ""),
        destination=cfg.path("collections"), extras=extras,
        extensions=sync_extensions(cfg.get("ingest.extensions")),
        recursive=bool(cfg.get("ingest.recursive")), workers=int(cfg.get("sync.workers")),
        progress=progress, cfg=cfg)
    summary = transport(kind).sync(request)
    summary.seconds = time.perf_counter() - began
    for error in summary.errors[:20]:
        log.warning("sync: %s", error)
    return summary


__all__ = ["MANIFEST_NAME", "RSYNC_PARTIAL_DIR", "TRANSPORTS", "IncompleteDownload", "SyncError", "SyncRequest",
           "SyncSource", "SyncSummary", "copy_file", "download", "is_remote", "parse_index", "partial_name",
           "parse_list_file", "rsync_command", "sync_collections", "sync_extensions", "sync_http", "sync_local",
           "sync_rsync", "transport"]
