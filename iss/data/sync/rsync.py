"""``sync.kind: rsync``: ``user@host:path`` over ssh (the original project's way), or a local path.

One rsync run with ``--times`` (unchanged files are skipped by size and mtime) and
``--partial-dir`` (an interrupted transfer resumes, and its partial file stays in a hidden
folder), recursive like ``local``. Config keys: ``sync.ssh``, ``sync.rsync_options``.
"""

from __future__ import annotations

import logging
import posixpath
import re
import subprocess
import tempfile
from pathlib import Path

from tqdm import tqdm

from iss.data.ids import normalise_extensions
from iss.data.listing import list_folder
from iss.data.sync.base import SyncError, SyncRequest, SyncSource, SyncSummary, sync_extensions

log = logging.getLogger(__name__)

RSYNC_PARTIAL_DIR = ".rsync-partial"
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


class RsyncSource(SyncSource):
    """rsync from ``host:path``, ``rsync://...`` or a local folder."""

    def sync(self, request: SyncRequest) -> SyncSummary:
        cfg = request.cfg
        source = request.source if is_remote(request.source) else str(request.local_path())
        return sync_rsync(source, request.subdir, request.destination, request.extras, request.extensions,
                          ssh=str(cfg.get("sync.ssh")), options=list(cfg.get("sync.rsync_options")),
                          progress=request.progress, recursive=request.recursive)
