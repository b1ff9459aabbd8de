"""Picture ids and timestamps from file names.

A picture id is the file name without its extension (``20171113-181340.jpg`` ->
``20171113-181340``). Ids are database keys and cache keys, so they are restricted to
``[A-Za-z0-9._-]``, at most 64 characters (the width of the ``pictures_id`` columns):
anything else is an *unreadable id* and the file is rejected with reason ``bad_id``.

The timestamp of a picture comes from its id through a ``strptime`` pattern
(``ingest.filename_pattern``, default ``%Y%m%d-%H%M%S``); the ingest falls back to the
EXIF date, then to the file time, when the pattern does not match.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

MAX_ID_LENGTH = 64  # = iss.db.schema.ID length
ID_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
DEFAULT_FILENAME_PATTERN = "%Y%m%d-%H%M%S"
DEFAULT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp")
# Names written by our own sync and generator (and by common tools) while a file is incomplete.
TEMPORARY_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload")


class BadIdError(ValueError):
    """A file name whose stem cannot be a picture id."""


def split_name(filename: str) -> tuple[str, str]:
    """``(stem, extension)`` of a file name; the extension keeps its dot and case."""
    dot = filename.rfind(".")
    if dot <= 0:  # no extension, or a hidden name like ".jpg"
        return filename, ""
    return filename[:dot], filename[dot:]


def id_problem(picture_id: str) -> str | None:
    """Why ``picture_id`` cannot be an id, or None when it can."""
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


def picture_id(filename: str) -> str:
    """The picture id of a file name (its stem).

    Raises
    ------
    BadIdError
        Naming the file and what an id may contain; rename the file to fix it.
    """
    stem, _ = split_name(filename)
    problem = id_problem(stem)
    if problem:
        raise BadIdError(f"{filename!r}: {problem}; rename the file")
    return stem


def is_candidate(filename: str, extensions: Iterable[str] = DEFAULT_EXTENSIONS) -> bool:
    """Whether a directory entry should be considered a picture file.

    Hidden files and the temporary names of interrupted downloads are never candidates,
    so a half-written file cannot enter the collection.
    """
    if filename.startswith(".") or filename.endswith(TEMPORARY_SUFFIXES):
        return False
    _, ext = split_name(filename)
    return ext.lower() in extensions


def normalise_extensions(extensions: Iterable[str]) -> tuple[str, ...]:
    """Lower-case extensions with a leading dot (``"JPG"`` -> ``".jpg"``)."""
    return tuple(sorted({e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}))


def parse_timestamp(picture_id: str, pattern: str = DEFAULT_FILENAME_PATTERN) -> dt.datetime | None:
    """The time in a picture id, or None when ``pattern`` does not match it.

    Parameters
    ----------
    picture_id : str
        E.g. ``"20171113-181340"``.
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
