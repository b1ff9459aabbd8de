"""Picture ids and timestamps from file names.

A picture is found by its *file name*: its path relative to the collection folder
(``2019/cam_a/IMG_0001 (1).JPG``), kept as is in ``pictures.filename`` for display and for
opening the file. Any name is accepted. Its *id* is the database and cache key, and must be
safe in URLs, file names and every database: ``[A-Za-z0-9._-]``, at most 64 characters (the
width of the ``pictures_id`` columns). It is derived from the file name by :func:`assign_ids`:

- the file stem (``20171113-181340.jpg`` -> ``20171113-181340``, also inside a sub-folder, so
  a history file keyed by frame ids keeps working) when it is already a safe id that no other
  file holds;
- otherwise the stem made safe (accents folded to ASCII, every other character to ``_``,
  shortened) plus ``_`` and 8 hex digits of a hash of the whole relative path
  (``Screenshot 1.png`` -> ``Screenshot_1_5f0c1e2a``, ``été.jpg`` -> ``ete_91b0c3d4``):
  unique, and the same on every run and every machine.

A file keeps the id it was first given: ids already in the database are never handed to
another file.

The timestamp of a picture comes from its file stem through a ``strptime`` pattern
(``ingest.filename_pattern``, default ``%Y%m%d-%H%M%S``); the ingest falls back to the
EXIF date, then to the file time, when the pattern does not match.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import posixpath
import re
import unicodedata
from collections.abc import Iterable, Mapping

MAX_ID_LENGTH = 64  # = iss.db.schema.ID length
ID_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
HASH_DIGITS = 8
DEFAULT_FILENAME_PATTERN = "%Y%m%d-%H%M%S"
# Names written by our own sync and generator (and by common tools) while a file is incomplete.
TEMPORARY_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload")


def split_name(filename: str) -> tuple[str, str]:
    """``(stem, extension)`` of a file name (its last path component); the extension keeps its dot and case."""
    filename = posixpath.basename(filename)
    dot = filename.rfind(".")
    if dot <= 0:  # no extension, or a hidden name like ".jpg"
        return filename, ""
    return filename[:dot], filename[dot:]


def id_problem(picture_id: str) -> str | None:
    """Why ``picture_id`` cannot be an id as it is, or None when it can."""
    if not picture_id:
        return "empty id"
    if len(picture_id) > MAX_ID_LENGTH:
        return f"id has {len(picture_id)} characters, at most {MAX_ID_LENGTH} allowed"
    if picture_id.startswith("."):
        return "id starts with '.' (a hidden file name)"
    if not ID_PATTERN.fullmatch(picture_id):
        bad = sorted({c for c in picture_id if not ID_PATTERN.fullmatch(c)})
        return f"id contains {''.join(bad)!r}; only letters, digits, '.', '_' and '-' are allowed"
    return None


def hashed_id(filename: str, digits: int = HASH_DIGITS) -> str:
    """The safe id of a file name: its stem made safe, ``_`` and ``digits`` hex digits of a hash of ``filename``.

    Parameters
    ----------
    filename : str
        Path relative to the collection folder, ``/``-separated (the hash covers all of it).
    digits : int, default=8
        Hex digits of the BLAKE2b hash kept (8: one collision in ~4 billion pairs).

    Returns
    -------
    str
        At most :data:`MAX_ID_LENGTH` characters of ``[A-Za-z0-9._-]``, e.g. ``IMG_0001_1_3fa2c1d0``.
    """
    stem, _ = split_name(filename)
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    base = _UNSAFE.sub("_", ascii_stem).strip("._-")[:MAX_ID_LENGTH - digits - 1].rstrip("._-")
    digest = hashlib.blake2b(filename.encode("utf-8", "surrogateescape"), digest_size=(digits + 1) // 2)
    tail = digest.hexdigest()[:digits]
    return f"{base}_{tail}" if base else tail


def assign_ids(filenames: Iterable[str], known: Mapping[str, str] | None = None) -> dict[str, str]:
    """A unique, stable id for each file name (see the module docstring).

    Parameters
    ----------
    filenames : iterable of str
        Paths relative to the collection folder, ``/``-separated.
    known : mapping of str to str, optional
        ``filename -> id`` already in the database: those files keep their id, and no other
        file gets one of those ids.

    Returns
    -------
    dict of str to str
        ``filename -> id`` for every file name. Files nearer the top of the folder get the
        plain stem first (``b.jpg`` before ``2019/b.jpg``), then in name order.
    """
    known = dict(known or {})
    used = set(known.values())
    ids = {}
    for name in sorted(filenames, key=lambda f: (f.count("/"), f)):
        if name in known:
            ids[name] = known[name]
            continue
        stem, _ = split_name(name)
        candidate = stem if id_problem(stem) is None and stem not in used else hashed_id(name)
        if candidate in used:  # a hash collision, or a file named like another one's hashed id
            candidate = hashed_id(name, 16)
        used.add(candidate)
        ids[name] = candidate
    return ids


def is_temporary(filename: str) -> bool:
    """Whether a file name is a hidden name or the temporary name of an unfinished download or copy."""
    name = posixpath.basename(filename)
    return name.startswith(".") or name.endswith(TEMPORARY_SUFFIXES)


def normalise_extensions(extensions: Iterable[str]) -> tuple[str, ...]:
    """Lower-case extensions with a leading dot (``"JPG"`` -> ``".jpg"``)."""
    return tuple(sorted({e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}))


def parse_timestamp(picture_id: str, pattern: str = DEFAULT_FILENAME_PATTERN) -> dt.datetime | None:
    """The time in a picture id, or None when ``pattern`` does not match it.

    Parameters
    ----------
    picture_id : str
        A file stem, e.g. ``"20171113-181340"``.
    pattern : str, default="%Y%m%d-%H%M%S"
        A ``datetime.strptime`` pattern matching the whole id. Empty disables parsing.

    Returns
    -------
    datetime or None
        Naive, in the clock of the file names (see ``ingest.timezone``).
    """
    if not pattern:
        return None
    if pattern == DEFAULT_FILENAME_PATTERN:  # fast path (strptime costs ~10 us a call)
        if len(picture_id) != 15 or picture_id[8] != "-" or not (picture_id[:8] + picture_id[9:]).isdigit():
            return None
        try:
            return dt.datetime(int(picture_id[:4]), int(picture_id[4:6]), int(picture_id[6:8]),
                               int(picture_id[9:11]), int(picture_id[11:13]), int(picture_id[13:15]))
        except ValueError:
            return None
    try:
        return dt.datetime.strptime(picture_id, pattern)
    except ValueError:
        return None


def parse_exif_datetime(value) -> dt.datetime | None:
    """An EXIF ``"YYYY:MM:DD HH:MM:SS"`` date (DateTimeOriginal / DateTime), or None if unusable."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    value = value.strip().rstrip("\x00")
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M"):
        try:
            return dt.datetime.strptime(value[:19], fmt)
        except ValueError:
            continue
    return None
