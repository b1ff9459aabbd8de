"""The README's recipe "add a sync source": one module (``folder_copy_source.py``) plus one line in
``TRANSPORTS``, then the step, the config schema and its errors know the new kind."""

from __future__ import annotations

import pytest

from iss.config import ConfigError
from iss.data.sync import TRANSPORTS, sync_collections

from .test_sync import _make_source


@pytest.fixture
def folder_copy(monkeypatch):
    # the one registry line, as the README shows it (monkeypatch removes it after the test)
    monkeypatch.setitem(TRANSPORTS, "folder_copy", "tests.data.folder_copy_source:FolderCopySource")


def test_a_registered_transport_runs_as_the_sync_step(folder_copy, cfg, tmp_path):
    names = _make_source(tmp_path / "src")
    cfg = cfg.with_overrides({"sync": {"kind": "folder_copy", "source": str(tmp_path / "src")}})
    summary = sync_collections(cfg, progress=False)
    assert (summary.kind, summary.listed, summary.transferred, summary.skipped) == ("folder_copy", 5, 5, 0)
    dest = cfg.path("collections")
    assert sorted(p.name for p in dest.iterdir()) == names  # pictures only, no .part left
    assert (dest / names[0]).read_bytes() == (tmp_path / "src" / "collections" / names[0]).read_bytes()
    again = sync_collections(cfg, progress=False)
    assert (again.transferred, again.skipped) == (0, 5)
    assert "sync (folder_copy)" in again.format()


def test_the_config_lists_a_registered_kind_among_the_valid_ones(folder_copy, cfg):
    with pytest.raises(ConfigError, match="sync.kind is 'ftp'; expected 'local', 'rsync', 'http', 'none' or "
                                          "'folder_copy'"):
        cfg.with_overrides({"sync": {"kind": "ftp"}})


def test_without_its_line_the_kind_is_refused(cfg):
    with pytest.raises(ConfigError, match="sync.kind is 'folder_copy'; expected 'local', 'rsync', 'http' or 'none'"):
        cfg.with_overrides({"sync": {"kind": "folder_copy"}})
