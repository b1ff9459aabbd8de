"""Sync sources: local folder, rsync (command line and a local run), HTTP against a local server."""

from __future__ import annotations

import functools
import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from iss.config import ConfigError
from iss.data.listing import list_folder
from iss.data.sync import (SyncError, is_remote, parse_index, parse_list_file, rsync_command, sync_collections)

from .picture_files import frame, jpeg_bytes


def _make_source(root: Path, n: int = 5) -> list[str]:
    """A source laid out like the demo: collections/, history/history.txt, labels.csv."""
    (root / "collections").mkdir(parents=True)
    (root / "history").mkdir()
    names = []
    for i in range(n):
        name = f"20200101-00{i:02d}00.jpg"
        (root / "collections" / name).write_bytes(jpeg_bytes(frame(i, (64 + 8 * i, 36))))
        os.utime(root / "collections" / name, (1_600_000_000 + i, 1_600_000_000 + i))
        names.append(name)
    (root / "collections" / "notes.txt").write_text("not a picture")
    (root / "collections" / ".hidden.jpg").write_bytes(b"hidden")
    (root / "history" / "history.txt").write_text("1;2;20200101-000000;Ocean\n")
    (root / "labels.csv").write_text("pictures_id,kind\n20200101-000000,nadir\n")
    return names


def _same_files(a: Path, b: Path, names) -> bool:
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


# --- local ----------------------------------------------------------------------------------------

def test_local_sync_copies_then_skips_unchanged_files(cfg, tmp_path):
    source = tmp_path / "src"
    names = _make_source(source)
    cfg = cfg.with_overrides({"sync": {"kind": "local", "source": str(source)}})
    dest = cfg.path("collections")
    summary = sync_collections(cfg, progress=False)
    assert (summary.listed, summary.transferred, summary.skipped, summary.failed) == (5, 5, 0, 0)
    assert sorted(p.name for p in dest.iterdir()) == names  # no .part, no other files
    assert _same_files(source / "collections", dest, names)
    assert [(n, r) for n, r, _ in summary.not_copied] == [(".hidden.jpg", "hidden"), ("notes.txt", "not_picture")]
    assert "notes.txt: not_picture" in summary.format()
    assert int((dest / names[2]).stat().st_mtime) == 1_600_000_002
    assert summary.extras == {"history": "transferred", "labels": "transferred"}
    assert cfg.path("history").read_text() == (source / "history" / "history.txt").read_text()
    assert cfg.path("labels").exists()

    again = sync_collections(cfg, progress=False)
    assert (again.transferred, again.skipped) == (0, 5)
    assert again.extras == {"history": "unchanged", "labels": "unchanged"}

    (source / "collections" / names[0]).write_bytes(jpeg_bytes(frame(99, (100, 50))))
    third = sync_collections(cfg, progress=False)
    assert third.transferred == 1 and _same_files(source / "collections", dest, names)


def test_local_sync_errors_name_the_folder(cfg, tmp_path):
    with pytest.raises(SyncError, match=r"sync source folder .*nowhere/collections does not exist"):
        sync_collections(cfg.with_overrides({"sync": {"source": str(tmp_path / "nowhere")}}), progress=False)
    with pytest.raises(ConfigError, match="sync.kind is 'ftp'; expected 'local', 'rsync', 'http' or 'none'"):
        cfg.with_overrides({"sync": {"kind": "ftp"}})
    with pytest.raises(SyncError, match="not an http"):
        sync_collections(cfg.with_overrides({"sync": {"kind": "http", "source": "/data"}}), progress=False)


def test_missing_history_and_labels_are_reported_not_fatal(cfg, tmp_path):
    source = tmp_path / "src"
    _make_source(source)
    (source / "labels.csv").unlink()
    shutil.rmtree(source / "history")
    summary = sync_collections(cfg.with_overrides({"sync": {"source": str(source)}}), progress=False)
    assert summary.transferred == 5 and summary.extras == {"history": "missing", "labels": "missing"}


# --- rsync ----------------------------------------------------------------------------------------

def test_rsync_command_for_a_remote_source():
    command = rsync_command("iss@example.org:/data/iss/collections", "/tmp/dest", ssh="ssh -p 2222",
                            extensions=[".jpg", ".png"], options=["--bwlimit=100"])
    assert command[0] == "rsync"
    assert command[-2:] == ["iss@example.org:/data/iss/collections/", "/tmp/dest/"]
    assert "--times" in command and "--recursive" in command and "--partial-dir=.rsync-partial" in command
    assert command[command.index("-e") + 1] == "ssh -p 2222"
    filters = [a for a in command if a.startswith(("--include", "--exclude"))]
    assert filters == ["--exclude=.*", "--include=*/", "--include=*.[jJ][pP][gG]", "--include=*.[pP][nN][gG]",
                       "--exclude=*"]
    flat = rsync_command("host:/x", "/tmp/dest", extensions=[".jpg"], recursive=False)
    assert "--dirs" in flat and "--recursive" not in flat and "--include=*/" not in flat
    assert "--bwlimit=100" in command


def test_rsync_command_for_a_local_source_and_a_single_file():
    command = rsync_command("/srv/pictures", "/tmp/dest")
    assert "-e" not in command and command[-2:] == ["/srv/pictures/", "/tmp/dest/"]
    single = rsync_command("host:/data/history/history.txt", "/tmp/h.txt", directory=False)
    assert single[-2:] == ["host:/data/history/history.txt", "/tmp/h.txt"] and "--recursive" not in single
    assert "-e" in single


@pytest.mark.parametrize("source, remote", [
    ("host:/data", True), ("user@host:data", True), ("rsync://host/module", True), ("host::module", True),
    ("/data/pictures", False), ("data/external/demo", False), ("./a:b", False), ("https://host/x", False),
])
def test_remote_sources_are_recognised(source, remote):
    assert is_remote(source) is remote


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed (apt-get install rsync)")
def test_rsync_run_on_a_local_path(cfg, tmp_path):
    source = tmp_path / "src"
    names = _make_source(source)
    cfg = cfg.with_overrides({"sync": {"kind": "rsync", "source": str(source)}})
    summary = sync_collections(cfg, progress=False)
    dest = cfg.path("collections")
    assert (summary.transferred, summary.listed, summary.failed) == (5, 5, 0)
    assert sorted(p.name for p in dest.iterdir()) == names  # not notes.txt, not .hidden.jpg
    assert _same_files(source / "collections", dest, names)
    assert summary.extras == {"history": "transferred", "labels": "transferred"}
    assert cfg.path("history").read_text() == "1;2;20200101-000000;Ocean\n"
    again = sync_collections(cfg, progress=False)
    assert (again.transferred, again.skipped) == (0, 5)
    (source / "labels.csv").unlink()
    assert sync_collections(cfg, progress=False).extras["labels"] == "missing"


# --- http -----------------------------------------------------------------------------------------

class _Server:
    """A local HTTP server over a folder that records requests, can cut a download short, and
    answers Range requests (http.server itself does not)."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[tuple[str, dict, int]] = []
        self.cut_next: set[str] = set()
        server_state = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send_response(self, code, message=None):
                server_state.requests.append((self.path, dict(self.headers), code))
                super().send_response(code, message)

            def do_GET(self):
                path = Path(self.translate_path(self.path))
                name = path.name
                if path.is_file() and name in server_state.cut_next:
                    server_state.cut_next.discard(name)
                    data = path.read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("Last-Modified", self.date_time_string(int(path.stat().st_mtime)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])  # then the connection drops
                    self.close_connection = True
                    return
                last_modified = self.date_time_string(int(path.stat().st_mtime)) if path.is_file() else None
                wanted = self.headers.get("Range", "")
                if path.is_file() and wanted.startswith("bytes=") and self.headers.get("If-Range") == last_modified:
                    start = int(wanted[6:].split("-")[0])
                    data = path.read_bytes()
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                    self.send_header("Content-Length", str(len(data) - start))
                    self.send_header("Last-Modified", last_modified)
                    self.end_headers()
                    self.wfile.write(data[start:])
                    return
                super().do_GET()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def codes(self, suffix: str = ".jpg") -> list[int]:
        return [code for path, _, code in self.requests if path.endswith(suffix)]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def http_source(tmp_path):
    root = tmp_path / "served"
    names = _make_source(root)
    server = _Server(root)
    yield server, names
    server.close()


def test_http_sync_downloads_then_skips_unchanged_then_gets_changed(cfg, http_source):
    server, names = http_source
    cfg = cfg.with_overrides({"sync": {"kind": "http", "source": server.url, "workers": 3}})
    dest = cfg.path("collections")
    summary = sync_collections(cfg, progress=False)
    assert (summary.listed, summary.transferred, summary.failed) == (5, 5, 0), summary.errors
    assert sorted(p.name for p in dest.iterdir() if not p.name.startswith(".")) == names
    assert _same_files(server.root / "collections", dest, names)
    assert int((dest / names[1]).stat().st_mtime) == 1_600_000_001  # from Last-Modified
    assert summary.extras == {"history": "transferred", "labels": "transferred"}
    assert cfg.path("history").read_text() == "1;2;20200101-000000;Ocean\n"

    server.requests.clear()
    again = sync_collections(cfg, progress=False)
    assert (again.transferred, again.skipped) == (0, 5)
    assert server.codes() == [304] * 5  # one conditional request each, no body
    assert all("If-Modified-Since" in headers for path, headers, _ in server.requests if path.endswith(".jpg"))

    changed = server.root / "collections" / names[3]
    changed.write_bytes(jpeg_bytes(frame(77, (90, 40))))
    os.utime(changed, (1_700_000_000, 1_700_000_000))
    third = sync_collections(cfg, progress=False)
    assert (third.transferred, third.skipped) == (1, 4)
    assert (dest / names[3]).read_bytes() == changed.read_bytes()


def test_interrupted_download_leaves_no_partial_picture_then_resumes(cfg, http_source):
    server, names = http_source
    cfg = cfg.with_overrides({"sync": {"kind": "http", "source": server.url, "workers": 2}})
    dest = cfg.path("collections")
    server.cut_next.add(names[2])
    summary = sync_collections(cfg, progress=False)
    assert (summary.transferred, summary.failed) == (4, 1)
    assert names[2] in summary.errors[0]
    assert not (dest / names[2]).exists()  # never under its final name
    assert names[2] not in list_folder(dest).pictures  # and invisible to the ingest
    partial = dest / f".{names[2]}.part"
    assert 0 < partial.stat().st_size < (server.root / "collections" / names[2]).stat().st_size

    server.requests.clear()
    again = sync_collections(cfg, progress=False)
    assert (again.transferred, again.failed) == (1, 0)
    assert (dest / names[2]).read_bytes() == (server.root / "collections" / names[2]).read_bytes()
    assert not partial.exists()
    resumed = [(headers, code) for path, headers, code in server.requests if path.endswith(names[2])]
    assert resumed[0][1] == 206 and resumed[0][0]["Range"] == f"bytes={partial_size(server, names[2])}-"


def partial_size(server, name: str) -> int:
    return len((server.root / "collections" / name).read_bytes()) // 2


def test_http_list_file(cfg, http_source):
    server, names = http_source
    (server.root / "pictures.txt").write_text(
        f"# two pictures\ncollections/{names[0]}\n\n{server.url}collections/{names[4]}\ncollections/missing.jpg\n")
    cfg = cfg.with_overrides({"sync": {"kind": "http", "source": server.url, "list_file": "pictures.txt"}})
    summary = sync_collections(cfg, progress=False)
    assert (summary.listed, summary.transferred, summary.failed) == (3, 2, 1)
    assert "missing.jpg" in summary.errors[0] and "404" in summary.errors[0]
    assert sorted(p.name for p in cfg.path("collections").iterdir() if not p.name.startswith(".")) == \
        [names[0], names[4]]


def test_http_unreachable_index_names_the_url(cfg, http_source):
    server, _ = http_source
    cfg = cfg.with_overrides({"sync": {"kind": "http", "source": server.url, "collections_subdir": "nothing"}})
    with pytest.raises(SyncError, match=r"cannot read the picture index at .*/nothing/.*404"):
        sync_collections(cfg, progress=False)


def test_parse_index_keeps_only_picture_links():
    html = """<html><body><h1>Index of /pictures</h1>
    <a href="?C=N;O=D">Name</a> <a href="/">Parent Directory</a> <a href="sub/">sub/</a>
    <a href="20171113-181340.jpg">20171113-181340.jpg</a>
    <a href="./20171113-183340.JPG">x</a>
    <a href="http://other.example/img/20171113-190000.png">remote</a>
    <a href="20171113%20space.jpg">escaped</a>
    <a href=".hidden.jpg">h</a> <a href="x.jpg.part">p</a> <a href="notes.txt">t</a>
    <a href="20171113-181340.jpg">duplicate</a> <a href="mailto:a@b.c">mail</a>
    </body></html>"""
    found = dict(parse_index(html, "http://host/pictures/"))
    assert found == {
        "20171113-181340.jpg": "http://host/pictures/20171113-181340.jpg",
        "20171113-183340.JPG": "http://host/pictures/20171113-183340.JPG",
        "20171113-190000.png": "http://other.example/img/20171113-190000.png",
        "20171113 space.jpg": "http://host/pictures/20171113%20space.jpg",
    }
    assert parse_list_file("a.jpg\n# c\n/b/c.png\n", "http://h/x/") == [("a.jpg", "http://h/x/a.jpg"),
                                                                           ("c.png", "http://h/b/c.png")]


def test_a_plain_folder_of_pictures_is_named_with_the_key_that_reads_it(cfg, tmp_path):
    """The default collections_subdir is the demo's layout; a user's flat folder gets told the key."""
    from PIL import Image

    plain = tmp_path / "photos"
    plain.mkdir()
    Image.new("RGB", (32, 24), "navy").save(plain / "a b.jpg")
    with pytest.raises(SyncError, match=r'set sync.collections_subdir: "" \(it is \'collections\'\)'):
        sync_collections(cfg.with_overrides({"sync": {"source": str(plain)}}), progress=False)
    summary = sync_collections(cfg.with_overrides({"sync": {"source": str(plain), "collections_subdir": ""}}),
                               progress=False)
    assert summary.listed == 1 and (cfg.path("collections") / "a b.jpg").is_file()
