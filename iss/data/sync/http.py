"""``sync.kind: http``: an ``http(s)://`` base URL whose ``<subdir>/`` page is an index of links to
the pictures (an Apache/nginx listing, or any HTML page), or a list file of picture URLs
(``sync.list_file``; relative URLs in it are relative to the list).

Downloads run in ``sync.workers`` threads; files already present are re-requested conditionally
(``If-None-Match`` / ``If-Modified-Since``: unchanged files cost one 304 reply), and interrupted
downloads resume with a ``Range`` request. Config keys: ``sync.list_file``, ``sync.recheck``,
``sync.timeout``.
"""

from __future__ import annotations

import email.utils
import json
import os
import posixpath
import re
import time
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

from tqdm import tqdm

from iss.artefacts import write_text
from iss.data.ids import is_temporary, normalise_extensions, split_name
from iss.data.sync.base import (SyncError, SyncRequest, SyncSource, SyncSummary, bounded, partial_name,
                                sync_extensions)

MANIFEST_NAME = ".sync-http.json"


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
    partial = partial_name(final)
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
                for task, future in bounded(pool, download, tasks, 8 * max(1, workers)):
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



class HttpSource(SyncSource):
    """Downloads from an index page or a list file over HTTP(S)."""

    def sync(self, request: SyncRequest) -> SyncSummary:
        cfg = request.cfg
        if not re.match(r"^https?://", request.source):
            raise SyncError(f"{cfg.source}: sync.kind is http but sync.source {request.source!r} is not an "
                            f"http(s):// URL")
        return sync_http(request.source, request.subdir, request.destination, request.extras, request.extensions,
                         list_file=str(cfg.get("sync.list_file") or ""), workers=request.workers,
                         recheck=bool(cfg.get("sync.recheck")), timeout=float(cfg.get("sync.timeout")),
                         progress=request.progress)
