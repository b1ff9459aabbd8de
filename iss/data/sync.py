"""The ``sync_collections`` step: bring new pictures (and the history file) from a source into ``data/raw``.

Reads the ``sync`` config section. Writes ``paths.collections`` (pictures), ``paths.history``
and, when the source has one, ``paths.labels`` (the demo's evaluation labels).

A source (``sync.source``, default ``paths.source``) is a folder laid out as::

    <source>/<sync.collections_subdir>/**/*.jpg  the pictures, in sub-folders too (default subdir: collections)
    <source>/<sync.history_file>                 locations (default history/history.txt), optional
    <source>/<sync.labels_file>                  evaluation labels (default labels.csv), optional

reached in one of three ways (``sync.kind``):

``local``
    A folder on this machine, with its sub-folders (``ingest.recursive``). Files are copied in
    parallel threads, each to the same relative path; every other file is named with the reason
    it is not copied (:mod:`iss.data.listing`).
``rsync``
    ``user@host:path`` over ssh (the original project's way), or a local path. One rsync run
    with ``--times`` (unchanged files are skipped by size and mtime) and ``--partial-dir``
    (an interrupted transfer resumes, and its partial file stays in a hidden folder), recursive
    like ``local``.
``http``
    An ``http(s)://`` base URL whose ``<subdir>/`` page is an index of links to the pictures
    (an Apache/nginx listing, or any HTML page), or a list file of picture URLs
    (``sync.list_file``; relative URLs in it are relative to the list). Downloads run in ``sync.workers`` threads; files already present are
    re-requested conditionally (``If-None-Match`` / ``If-Modified-Since``: unchanged files
    cost one 304 reply), and interrupted downloads resume with a ``Range`` request.
``none``
    Nothing to do: ``paths.collections`` already holds the pictures.

In every case a file is written to a hidden temporary name in the destination folder
(:func:`iss.artefacts.atomic_path`; ``.<name>.part`` for a download, which resumes from it) and
renamed when complete, so a partial file never enters the collection.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

from tqdm import tqdm

from iss.artefacts import atomic_path, write_text
from iss.config import Config
from iss.data.ids import is_temporary, normalise_extensions, split_name
from iss.data.listing import PICTURE_LIKE_EXTENSIONS, list_folder, picture_extensions

log = logging.getLogger(__name__)

KINDS = ("local", "rsync", "http", "none")
MANIFEST_NAME = ".sync-http.json"
RSYNC_PARTIAL_DIR = ".rsync-partial"


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


def _bounded(pool: ThreadPoolExecutor, function, tasks, limit: int):
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


def _partial_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.part")


# --------------------------------------------------------------------------- #
# local                                                                       #
# --------------------------------------------------------------------------- #

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
        raise SyncError(f"sync source folder {folder} does not exist; set sync.source (or paths.source) to the "
                        f"folder holding '{folder.name}/', or run `make generate_demo` for the demo")
    listing = list_folder(folder, sync_extensions() if extensions is None else extensions, recursive=recursive)
    names, summary.not_copied = listing.pictures, listing.skipped
    summary.listed = len(names)
    destination.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max(1, workers)) as pool, \
            tqdm(total=len(names), unit="file", desc="sync", disable=not progress) as bar:
        tasks = ((folder / name, destination / name) for name in names)
        for (src, _), future in _bounded(pool, copy_file, tasks, 8 * max(1, workers)):
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


# --------------------------------------------------------------------------- #
# rsync                                                                       #
# --------------------------------------------------------------------------- #

_REMOTE = re.compile(r"^(?:[^/:@\s]+@)?[^/:\s]+::?(?!//)")


def is_remote(source: str) -> bool:
    """Whether an rsync source names another host (``host:path``, ``user@host:path``, ``rsync://``)."""
    return source.startswith("rsync://") or bool(_REMOTE.match(source))


def _case_insensitive_glob(extension: str) -> str:
    return "*" + "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in extension)


def rsync_command(source: str, destination: str, *, ssh: str = "ssh", extensions=None,
                  options=(), directory: bool = True, recursive: bool = True) -> list[str]:
    """The rsync command line that syncs ``source`` into ``destination``.

    Parameters
    ----------
    source : str
        ``host:path``, ``user@host:path``, ``rsync://...`` or a local path.
    destination : str
        A local folder (``directory=True``) or file.
    ssh : str, default="ssh"
        The remote shell (``-e``), used only for a remote source.
    extensions : sequence of str
        Picture extensions to transfer (case-insensitive); everything else is excluded.
    options : sequence of str
        Extra rsync arguments (``sync.rsync_options``), e.g. ``["--bwlimit=5000"]``.
    directory : bool, default=True
        Sync the pictures of a folder; False for a single file.
    recursive : bool, default=True
        Also the pictures of its sub-folders (not hidden ones), to the same relative paths.

    Returns
    -------
    list of str
    """
    extensions = sync_extensions() if extensions is None else normalise_extensions(extensions)
    command = ["rsync", "--times", f"--partial-dir={RSYNC_PARTIAL_DIR}", "--out-format=%i %n"]
    if directory:
        command += ["--recursive", "--prune-empty-dirs", "--exclude=.*", "--include=*/"] if recursive else \
            ["--dirs", "--exclude=.*"]
        command += [f"--include={_case_insensitive_glob(ext)}" for ext in extensions]
        command += ["--exclude=*"]
    command += list(options)
    if is_remote(source) and not source.startswith("rsync://") and "::" not in source:
        command += ["-e", ssh]
    if directory:
        source, destination = source.rstrip("/") + "/", destination.rstrip("/") + "/"
    return command + [source, destination]


def _run_rsync(command: list[str], progress: bool, desc: str) -> tuple[int, int, str]:
    """Run rsync; ``(exit code, files received, stderr)``."""
    received = 0
    with tempfile.TemporaryFile(mode="w+") as errors:
        try:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True)
        except FileNotFoundError:
            raise SyncError("rsync is not installed (apt-get install rsync); or use sync.kind: local or http") from None
        with tqdm(unit="file", desc=desc, disable=not progress) as bar:
            for line in process.stdout:
                if line.startswith(">f"):  # itemized: a file received
                    received += 1
                    bar.update(1)
        code = process.wait()
        errors.seek(0)
        return code, received, errors.read()


def sync_rsync(source: str, subdir: str, destination: Path, extras: dict[str, tuple[str, Path]],
               extensions=None, ssh: str = "ssh", options=(), progress: bool = True,
               recursive: bool = True) -> SyncSummary:
    """Sync pictures (then the extra files) with rsync; unchanged files are skipped by size and mtime."""
    summary = SyncSummary("rsync", source, str(destination))
    destination.mkdir(parents=True, exist_ok=True)
    remote_folder = posixpath.join(source, subdir) if subdir else source
    command = rsync_command(remote_folder, str(destination), ssh=ssh, extensions=extensions, options=options,
                            recursive=recursive)
    log.info("running %s", " ".join(command))
    code, received, stderr = _run_rsync(command, progress, "rsync")
    if code in (23, 24):  # partial transfer: some files failed or vanished; the rest is done
        summary.errors.append(f"rsync exit {code} (some files not transferred): {stderr.strip()[-500:]}")
        summary.failed = max(1, stderr.count("\n"))
    elif code != 0:
        hint = (f"check that `ssh {source.split(':')[0]}` logs in without a password prompt and that the path exists"
                if is_remote(source) else "check that the folder exists")
        raise SyncError(f"rsync from {remote_folder} failed (exit {code}): {stderr.strip()[-500:]}; {hint}")
    summary.transferred = received
    extensions = sync_extensions() if extensions is None else normalise_extensions(extensions)
    summary.listed = len(list_folder(destination, extensions, recursive=recursive).pictures)
    summary.skipped = max(0, summary.listed - received)
    for label, (relative, target) in extras.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        command = rsync_command(posixpath.join(source, relative), str(target), ssh=ssh, options=options,
                                directory=False)
        code, received, stderr = _run_rsync(command, False, label)
        if code == 0:
            summary.extras[label] = "transferred" if received else "unchanged"
        elif code == 23 and ("No such file" in stderr or "change_dir" in stderr):
            summary.extras[label] = "missing"
        else:
            summary.extras[label] = "failed"
            summary.errors.append(f"{label}: rsync exit {code}: {stderr.strip()[-300:]}")
    return summary


# --------------------------------------------------------------------------- #
# http                                                                        #
# --------------------------------------------------------------------------- #

class _LinkParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append(href)


def parse_index(html: str, base_url: str, extensions=None) -> list[tuple[str, str]]:
    """``(file name, absolute URL)`` of every picture linked from an HTML index page.

    Links to other pages, sort links (``?C=N;O=D``), hidden and temporary names are dropped;
    the first link to a given file name wins.
    """
    parser = _LinkParser()
    parser.feed(html)
    return _pictures_from_urls(parser.links, base_url, extensions)


def _pictures_from_urls(urls, base_url: str, extensions) -> list[tuple[str, str]]:
    extensions = sync_extensions() if extensions is None else normalise_extensions(extensions)
    found: dict[str, str] = {}
    for href in urls:
        url = urljoin(base_url, href.strip())
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or parsed.query:
            continue
        name = unquote(posixpath.basename(parsed.path))
        if (name and "/" not in name and "\x00" not in name and not is_temporary(name)
                and split_name(name)[1].lower() in extensions):
            found.setdefault(name, parsed._replace(fragment="").geturl())
    return sorted(found.items())


def parse_list_file(text: str, base_url: str, extensions=None) -> list[tuple[str, str]]:
    """``(file name, URL)`` of a list file: one URL per line (absolute or relative), ``#`` comments."""
    urls = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return _pictures_from_urls(urls, base_url, extensions)


class IncompleteDownload(Exception):
    """The connection ended before the announced number of bytes arrived."""


def _http_date(seconds: float) -> str:
    return email.utils.formatdate(seconds, usegmt=True)


def _parse_http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def download(client, url: str, final: Path, entry: dict | None = None, recheck: bool = True) -> tuple[str, int, dict]:
    """Download ``url`` to ``final`` unless unchanged; resumable; never leaves a partial ``final``.

    Parameters
    ----------
    client : httpx.Client
    url : str
    final : Path
        Where the complete file goes. The body is written to ``.<name>.part`` beside it and
        renamed when complete; an interrupted download leaves the ``.part`` file (and a small
        ``.part.json`` with the server's validator) so the next call resumes with ``Range``.
    entry : dict, optional
        What was recorded for this file last time (``etag``, ``last_modified``, ``size``).
    recheck : bool, default=True
        Ask the server whether a file already present changed (conditional request).
        False: a present file is enough.

    Returns
    -------
    (state, bytes, entry)
        ``state`` is ``transferred`` or ``unchanged``; ``entry`` the new record.

    Raises
    ------
    httpx.HTTPError, IncompleteDownload, OSError
    """
    import httpx

    entry = entry or {}
    partial = _partial_name(final)
    partial_meta = partial.with_name(partial.name + ".json")
    local = final.stat() if final.exists() else None
    if local is not None and not recheck:
        return "unchanged", 0, entry
    headers = {}
    if local is not None:
        if entry.get("etag") and entry.get("size") == local.st_size:
            headers["If-None-Match"] = entry["etag"]
        headers["If-Modified-Since"] = _http_date(local.st_mtime)
    offset = 0
    if partial.exists():
        validator = None
        if partial_meta.exists():
            try:
                meta = json.loads(partial_meta.read_text())
                validator = meta.get("etag") or meta.get("last_modified")
            except (OSError, ValueError):
                validator = None
        if validator and partial.stat().st_size > 0:
            offset = partial.stat().st_size
            headers.update({"Range": f"bytes={offset}-", "If-Range": validator})
    with client.stream("GET", url, headers=headers) as response:
        if response.status_code == 304:
            return "unchanged", 0, entry
        if response.status_code not in (200, 206):
            raise httpx.HTTPStatusError(f"HTTP {response.status_code} for {url}", request=response.request,
                                        response=response)
        etag = response.headers.get("ETag")
        last_modified = response.headers.get("Last-Modified")
        remote_mtime = _parse_http_date(last_modified)
        length = response.headers.get("Content-Length")
        if (response.status_code == 200 and local is not None and length is not None
                and int(length) == local.st_size and remote_mtime is not None
                and remote_mtime <= local.st_mtime + 1):
            return "unchanged", 0, entry  # a server that ignores conditional requests
        expected = None
        if response.status_code == 206:
            match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                raise IncompleteDownload(f"{url}: unexpected Content-Range "
                                         f"{response.headers.get('Content-Range')!r} for a resume at {offset}")
            expected = int(match.group(2)) if match.group(2) != "*" else None
            mode = "ab"
        else:
            offset, mode = 0, "wb"
            expected = int(length) if length is not None else None
        final.parent.mkdir(parents=True, exist_ok=True)
        partial_meta.write_text(json.dumps({"etag": etag, "last_modified": last_modified, "url": url}))
        received = 0
        with open(partial, mode) as f:
            for block in response.iter_raw():  # as it arrives: an interruption keeps what came
                f.write(block)
                received += len(block)
        size = partial.stat().st_size
        if expected is not None and size != expected:
            raise IncompleteDownload(f"{url}: got {size} of {expected} bytes")
    if remote_mtime is not None:
        os.utime(partial, (time.time(), remote_mtime))  # so If-Modified-Since works next time
    os.replace(partial, final)
    partial_meta.unlink(missing_ok=True)
    return "transferred", received, {"etag": etag, "last_modified": last_modified, "size": size}


def _load_manifest(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _save_manifest(path: Path, manifest: dict) -> None:
    write_text(path, json.dumps(manifest, sort_keys=True))


def sync_http(base_url: str, subdir: str, destination: Path, extras: dict[str, tuple[str, Path]],
              extensions=None, list_file: str = "", workers: int = 4, recheck: bool = True,
              timeout: float = 60.0, progress: bool = True) -> SyncSummary:
    """Download new or changed pictures listed by an index page or a list file, in threads."""
    import httpx

    summary = SyncSummary("http", base_url, str(destination))
    base = base_url if base_url.endswith("/") else base_url + "/"
    index_url = urljoin(base, subdir.strip("/") + "/") if subdir else base
    destination.mkdir(parents=True, exist_ok=True)
    manifest_path = destination / MANIFEST_NAME
    manifest = _load_manifest(manifest_path)
    limits = httpx.Limits(max_connections=max(1, workers), max_keepalive_connections=max(1, workers))
    with httpx.Client(timeout=timeout, follow_redirects=True, limits=limits,
                      headers={"User-Agent": "smart-iss-posts-sync/1",
                               "Accept-Encoding": "identity"}) as client:  # byte ranges of the file itself
        try:
            if list_file:
                list_source = list_file if re.match(r"^https?://", list_file) else urljoin(base, list_file)
                response = client.get(list_source)
                response.raise_for_status()
                pictures = parse_list_file(response.text, str(response.url), extensions)  # relative to the list
            else:
                response = client.get(index_url)
                response.raise_for_status()
                pictures = parse_index(response.text, str(response.url), extensions)
        except httpx.HTTPError as exc:
            raise SyncError(f"cannot read the picture {'list' if list_file else 'index'} at "
                            f"{list_file or index_url}: {exc}; check sync.source"
                            f"{' and sync.list_file' if list_file else ' and sync.collections_subdir'}") from exc
        summary.listed = len(pictures)
        try:
            with ThreadPoolExecutor(max(1, workers)) as pool, \
                    tqdm(total=len(pictures), unit="file", desc="download", disable=not progress) as bar:
                tasks = ((client, url, destination / name, manifest.get(name), recheck) for name, url in pictures)
                for task, future in _bounded(pool, download, tasks, 8 * max(1, workers)):
                    name = task[2].name
                    bar.update(1)
                    try:
                        state, size, entry = future.result()
                    except (httpx.HTTPError, IncompleteDownload, OSError) as exc:
                        summary.failed += 1
                        summary.errors.append(f"{name}: {exc}")
                        continue
                    manifest[name] = entry
                    summary.transferred += state == "transferred"
                    summary.skipped += state == "unchanged"
                    summary.bytes += size
                    bar.set_postfix(MB=f"{summary.bytes / 1e6:.1f}", refresh=False)
        finally:
            _save_manifest(manifest_path, manifest)
        for label, (relative, target) in extras.items():
            try:
                summary.extras[label] = download(client, urljoin(base, relative), target)[0]
            except httpx.HTTPStatusError as exc:
                summary.extras[label] = "missing" if exc.response.status_code == 404 else "failed"
                if exc.response.status_code != 404:
                    summary.errors.append(f"{label}: {exc}")
            except (httpx.HTTPError, IncompleteDownload, OSError) as exc:
                summary.extras[label] = "failed"
                summary.errors.append(f"{label}: {exc}")
    return summary


# --------------------------------------------------------------------------- #
# The step                                                                    #
# --------------------------------------------------------------------------- #

def sync_extensions(setting="auto") -> tuple[str, ...]:
    """Extensions copied for an ``ingest.extensions`` setting: what the ingest reads, and with ``auto`` also
    the picture formats it cannot read here (HEIC, raw...), so the ingest names them and reads them once a
    plug-in is installed."""
    return tuple(sorted(set(picture_extensions(setting)) | (PICTURE_LIKE_EXTENSIONS if setting == "auto" else set())))


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
    if kind not in KINDS:
        raise SyncError(f"{cfg.source}: sync.kind is {kind!r}; expected one of {', '.join(KINDS)}")
    source = str(cfg.get("sync.source", "") or "") or str(cfg.get("paths.source"))
    subdir = str(cfg.get("sync.collections_subdir", "collections") or "")
    destination = cfg.path("collections")
    extensions = sync_extensions(cfg.get("ingest.extensions", "auto"))
    recursive = bool(cfg.get("ingest.recursive", True))
    workers = int(cfg.get("sync.workers", 4))
    extras = {}
    for label, key, target in (("history", "sync.history_file", "history"), ("labels", "sync.labels_file", "labels")):
        relative = str(cfg.get(key, "") or "")
        if relative:
            extras[label] = (relative, cfg.path(target))

    def local_path(text: str) -> Path:
        path = Path(text).expanduser()
        return path if path.is_absolute() else cfg.root / path

    if kind == "none":
        summary = SyncSummary("none", str(destination), str(destination))
    elif kind == "local":
        summary = sync_local(local_path(source), subdir, destination, extras, extensions, workers, progress,
                             recursive)
    elif kind == "rsync":
        rsync_source = source if is_remote(source) else str(local_path(source))
        summary = sync_rsync(rsync_source, subdir, destination, extras, extensions,
                             ssh=str(cfg.get("sync.ssh", "ssh")), options=list(cfg.get("sync.rsync_options", [])),
                             progress=progress, recursive=recursive)
    else:
        if not re.match(r"^https?://", source):
            raise SyncError(f"{cfg.source}: sync.kind is http but sync.source {source!r} is not an http(s):// URL")
        summary = sync_http(source, subdir, destination, extras, extensions,
                            list_file=str(cfg.get("sync.list_file", "") or ""), workers=workers,
                            recheck=bool(cfg.get("sync.recheck", True)), timeout=float(cfg.get("sync.timeout", 60)),
                            progress=progress)
    summary.seconds = time.perf_counter() - began
    for error in summary.errors[:20]:
        log.warning("sync: %s", error)
    return summary
