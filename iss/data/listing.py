"""What a collection folder holds: the picture files to read, and every other entry with the reason it is not read.

Shared by ``sync_collections`` (what to copy) and ``populate_db`` (what to ingest), so both
name the same files for the same reasons. A folder is searched recursively (``ingest.recursive``,
default true) and each picture is known by its path relative to the folder, ``/``-separated.

Which files are pictures is decided by extension, case-insensitively:

- ``ingest.extensions: auto`` (default) reads every format the installed Pillow can open
  (JPEG, PNG, GIF, BMP, TIFF, WebP, AVIF, JPEG 2000, ...; HEIC/HEIF too when the optional
  ``pillow-heif`` plug-in is installed: ``pip install -e '.[heic]'``); a list restricts it.
- A *picture-like* file that is not read (``.heic`` without the plug-in, camera raw files, a
  format left out of the list) is skipped with a reason that says what would read it.
- Everything else (hidden files and folders, unfinished downloads, other file types, and
  sub-folders when not recursive) is skipped with its reason too: nothing is left out silently.
"""

from __future__ import annotations

import functools
import hashlib
import mimetypes
import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from iss.data.ids import TEMPORARY_SUFFIXES, normalise_extensions, split_name

# The longest relative path stored (``pictures.filename`` and ``pictures_rejected.filename``).
MAX_FILENAME_LENGTH = 512
# Picture formats that mimetypes may not know on every system (HEIF family, raw camera files, JPEG XL).
PICTURE_LIKE_EXTENSIONS = frozenset({
    ".heic", ".heif", ".hif", ".avif", ".jxl", ".jfif", ".dng", ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".orf",
    ".rw2", ".raf", ".pef", ".srw", ".x3f", ".svg", ".exr", ".hdr",
})
HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".hif"})
HEIF_HINT = "HEIC/HEIF needs the optional pillow-heif plug-in: pip install -e '.[heic]' (or pip install pillow-heif)"
# Pillow formats that identify a file but cannot decode its pixels here (data containers, stubs).
_UNDECODABLE_FORMATS = frozenset({"BUFR", "GRIB", "HDF5", "MPEG", "WMF", "IPTC"})

# Reasons an entry of the folder is not read (``pictures_rejected.reason``).
SKIP_REASONS = {
    "unsupported_format": "a picture format the installed Pillow cannot read",
    "excluded_extension": "a picture format left out of ingest.extensions",
    "not_picture": "not a picture file (by its extension)",
    "hidden": "a hidden file or folder (name starting with '.')",
    "temporary": "an unfinished download or copy",
    "subfolder": "a sub-folder, not searched with ingest.recursive: false",
    "linked_folder": "a symbolic link to a folder, not followed",
    "unreadable": "the file or folder cannot be read (permissions, vanished, I/O error)",
    "name_too_long": f"a relative path longer than {MAX_FILENAME_LENGTH} characters",
}


@functools.lru_cache(maxsize=1)
def heif_plugin() -> bool:
    """Register the optional HEIC/HEIF opener (``pillow-heif``) with Pillow; whether it is installed."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    register_heif_opener()
    return True


@functools.lru_cache(maxsize=1)
def readable_extensions() -> tuple[str, ...]:
    """Extensions of every picture format the installed Pillow (and its plug-ins) can decode, lower-case."""
    from PIL import EpsImagePlugin, Image

    heif_plugin()
    Image.init()
    skip = set(_UNDECODABLE_FORMATS)
    if not EpsImagePlugin.gs_binary:  # EPS needs Ghostscript to render
        skip.add("EPS")
    return tuple(sorted(ext.lower() for ext, fmt in Image.registered_extensions().items()
                        if fmt in Image.OPEN and fmt not in skip))


def picture_extensions(setting: str | Iterable[str] = "auto") -> tuple[str, ...]:
    """The extensions read for an ``ingest.extensions`` setting: ``"auto"`` or a list (normalised)."""
    return readable_extensions() if setting == "auto" else normalise_extensions(setting)


def is_picture_like(extension: str) -> bool:
    """Whether a file extension names a picture format (readable here or not)."""
    extension = extension.lower()
    if extension in PICTURE_LIKE_EXTENSIONS or extension in readable_extensions():
        return True
    kind, _ = mimetypes.guess_type("x" + extension, strict=False)
    return bool(kind and kind.startswith("image/"))


def skip_reason(filename: str, extensions: Collection[str]) -> tuple[str, str] | None:
    """``(reason, detail)`` when a file (relative path) is not read as a picture, None when it is."""
    name = filename.rsplit("/", 1)[-1]
    if name.endswith(TEMPORARY_SUFFIXES):
        return "temporary", "an unfinished download or copy (it is read once complete)"
    if name.startswith("."):
        return "hidden", "a hidden file"
    _, ext = split_name(name)
    ext = ext.lower()
    if ext in HEIF_EXTENSIONS and not heif_plugin():
        return "unsupported_format", HEIF_HINT
    if ext in extensions:
        if len(filename) > MAX_FILENAME_LENGTH:
            return "name_too_long", (f"{len(filename)} characters; at most {MAX_FILENAME_LENGTH} are stored: "
                                     f"move it nearer the top of the folder")
        return None
    if ext in readable_extensions():
        return "excluded_extension", f"'{ext}' is not in ingest.extensions; add it (or use auto) to read these files"
    if is_picture_like(ext):
        return "unsupported_format", f"the installed Pillow cannot read '{ext}' files; convert them to JPEG or PNG"
    return "not_picture", f"not a picture file ({ext or 'no extension'})"


def stored_filename(filename: str) -> str:
    """``filename`` as the database stores it: unchanged, or cut to :data:`MAX_FILENAME_LENGTH` characters
    ending in ``~`` and a hash of the whole path (only for a skipped file with a longer path)."""
    if len(filename) <= MAX_FILENAME_LENGTH:
        return filename
    digest = hashlib.blake2b(filename.encode("utf-8", "surrogateescape"), digest_size=4).hexdigest()
    return f"{filename[:MAX_FILENAME_LENGTH - 9]}~{digest}"


@dataclass
class Listing:
    """A folder's picture files and its other entries.

    Attributes
    ----------
    pictures : list of str
        Relative paths of the files to read, sorted.
    skipped : list of (str, str, str)
        ``(relative path, reason, detail)`` of every other entry (folders end with ``/``);
        ``reason`` is a key of :data:`SKIP_REASONS`.
    folders : int
        Folders searched (the top one included).
    """

    pictures: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    folders: int = 0

    def add_file(self, path: str, extensions: Collection[str]) -> None:
        """A file of the folder: a picture to read, or skipped with its reason (:func:`skip_reason`)."""
        reason = skip_reason(path, extensions)
        if reason is None:
            self.pictures.append(path)
        else:
            self.skipped.append((path, *reason))

    def sorted(self) -> "Listing":
        """This listing, its pictures and skipped entries sorted by name."""
        self.pictures.sort()
        self.skipped.sort()
        return self


def list_folder(folder: str | os.PathLike, extensions: Collection[str] | None = None,
                recursive: bool = True) -> Listing:
    """List a collection folder: picture files (names only, no stat) and every skipped entry with its reason.

    Parameters
    ----------
    folder : path
    extensions : collection of str, optional
        Lower-case extensions with a dot; default every format Pillow reads here.
    recursive : bool, default=True
        Search sub-folders (hidden ones and symbolic links to folders are skipped, and named).

    Returns
    -------
    Listing
    """
    extensions = frozenset(readable_extensions() if extensions is None else extensions)
    listing = Listing()
    pending = [""]
    while pending:
        relative = pending.pop()
        listing.folders += 1
        try:
            with os.scandir(os.path.join(folder, relative) if relative else folder) as entries:
                found = list(entries)
        except OSError as exc:
            if not relative:
                raise
            listing.skipped.append((relative + "/", "unreadable", f"cannot list the folder: {exc.strerror or exc}"))
            continue
        for entry in found:
            path = f"{relative}/{entry.name}" if relative else entry.name
            try:
                is_dir = entry.is_dir()
                is_file = not is_dir and entry.is_file()
            except OSError as exc:
                listing.skipped.append((path, "unreadable", exc.strerror or str(exc)))
                continue
            if is_dir:
                if entry.name.startswith("."):
                    listing.skipped.append((path + "/", "hidden", "a hidden folder (not searched)"))
                elif entry.is_symlink():
                    listing.skipped.append((path + "/", "linked_folder", "a symbolic link to a folder (not followed)"))
                elif not recursive:
                    listing.skipped.append((path + "/", "subfolder",
                                            "a sub-folder (set ingest.recursive: true to read it)"))
                else:
                    pending.append(path)
            elif not is_file:
                listing.skipped.append((path, "unreadable", "not a regular file (broken link, device or pipe)"))
            else:
                listing.add_file(path, extensions)
    return listing.sorted()


def is_url(location: str | os.PathLike) -> bool:
    """True for an fsspec URL (``s3://bucket/pictures``, ``memory://x``); ``file://`` counts as a local path."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


def list_url(url: str, extensions: Collection[str] | None = None, recursive: bool = True) -> Listing:
    """:func:`list_folder` for an fsspec URL (object stores, ``memory://``): the same reasons, from one listing.

    Object stores have no symbolic links or devices; their "folders" are name prefixes. Hidden
    folders are named once and not searched, as on disk. ``s3://`` and ``gs://`` need their fsspec
    plug-in (``pip install s3fs`` or ``gcsfs``).

    Raises
    ------
    FileNotFoundError
        Nothing is stored under ``url``.
    """
    from iss.compute import import_optional

    fsspec = import_optional("fsspec", f"reading pictures from {url}")
    try:
        fs, root = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:  # an unknown protocol, or its plug-in is missing
        raise FileNotFoundError(f"cannot open {url}: {exc}") from None
    root = root.rstrip("/")
    if not fs.isdir(root):
        raise FileNotFoundError(f"no folder at {url}")
    extensions = frozenset(readable_extensions() if extensions is None else extensions)
    listing = Listing(folders=1)
    entries = fs.find(root, maxdepth=None if recursive else 1, withdirs=True, detail=True)
    hidden: list[str] = []
    for name in sorted(entries):
        path = name[len(root) + 1:] if name.startswith(root + "/") else name.lstrip("/")
        if not path or any(path.startswith(folder) for folder in hidden):
            continue
        if entries[name].get("type") == "directory":
            if path.rsplit("/", 1)[-1].startswith("."):
                listing.skipped.append((path + "/", "hidden", "a hidden folder (not searched)"))
                hidden.append(path + "/")
            elif not recursive:
                listing.skipped.append((path + "/", "subfolder", "a sub-folder (set ingest.recursive: true to read it)"))
            else:
                listing.folders += 1
            continue
        listing.add_file(path, extensions)
    return listing.sorted()
