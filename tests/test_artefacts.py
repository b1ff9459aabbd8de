"""The artefact catalog and the data flow: every name resolves, every read has an earlier writer,
files and folders are replaced atomically, and nothing else in the package replaces files by hand."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from iss.artefacts import ARTEFACTS, artefact, atomic_path, partial_name, replace_folder, write_text
from iss.pipeline import STEPS, data_flow

PACKAGE = Path(__file__).resolve().parents[1] / "iss"


@pytest.mark.parametrize("name", sorted(ARTEFACTS))
def test_every_artefact_names_a_writer_and_reader_that_exist(name):
    entry = ARTEFACTS[name]
    assert callable(entry.resolve("writer")) or isinstance(entry.resolve("writer"), property)
    assert entry.resolve("locate") is not None
    if entry.reader:
        assert callable(entry.resolve("reader"))
    else:
        with pytest.raises(LookupError, match="end product"):
            entry.resolve("reader")


def test_the_data_flow_reads_only_what_an_earlier_step_wrote():
    written: set[str] = set()
    for step in STEPS:
        for name in step.reads + step.writes:
            assert name in ARTEFACTS, f"step {step.name} names {name!r}, not in the catalog"
        assert set(step.reads) <= written, f"step {step.name} reads {set(step.reads) - written} before any writer"
        written |= set(step.writes)
    # each artefact has one writer step (the search index is written by `iss index`, outside the demo flow)
    writers = [name for step in STEPS for name in step.writes]
    assert len(writers) == len(set(writers))
    assert set(ARTEFACTS) - set(writers) == {"search_index"}
    assert data_flow()[2] == "populate_db: collection -> cache, pictures"
    with pytest.raises(KeyError, match="the catalog has source"):
        artefact("latent")


def test_atomic_path_replaces_on_success_and_leaves_the_file_on_error(tmp_path):
    target = tmp_path / "sub" / "latents.npz"
    assert partial_name(target).name == ".latents.partial.npz"  # hidden, same suffix
    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        np.savez(f, a=np.arange(3))
    assert np.load(target)["a"].tolist() == [0, 1, 2]
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash")
    assert np.load(target)["a"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in target.parent.iterdir()) == ["latents.npz"]
    assert write_text(tmp_path / "a.html", "é").read_text(encoding="utf-8") == "é"


def test_replace_folder_swaps_whole_folders(tmp_path):
    folder = tmp_path / "model"
    with replace_folder(folder) as tmp:
        (tmp / "params.json").write_text("1")
    with pytest.raises(RuntimeError), replace_folder(folder) as tmp:
        (tmp / "params.json").write_text("2")
        raise RuntimeError("crash")
    assert (folder / "params.json").read_text() == "1"
    with replace_folder(folder) as tmp:
        (tmp / "state.joblib").write_text("3")
    assert [p.name for p in folder.iterdir()] == ["state.joblib"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_files_are_replaced_only_through_the_catalog_helpers():
    """One owner for "write to a temporary name, then rename": iss.artefacts. The resumable download
    keeps its own partial file on purpose (it resumes from it)."""
    pattern = re.compile(r"os\.replace\(|\.rename\(|(tmp|partial)\.replace\(")
    found = {str(p.relative_to(PACKAGE)): len(pattern.findall(p.read_text())) for p in PACKAGE.rglob("*.py")}
    outside = {name: n for name, n in found.items() if n and name != "artefacts.py"}
    assert sum(outside.values()) <= 1, outside  # the download's resumable partial file


def test_latents_have_one_writer_and_one_strict_reader(tmp_path):
    from iss.config import load_config
    from iss.models.store import EncodeError, latents_encoder_sha, latents_path, read_latents, write_latents

    cfg = load_config(mode="demo", root=tmp_path)
    with pytest.raises(EncodeError, match="no latents.*make encode MODEL_TYPE=simple") as missing:
        read_latents(cfg, "simple", "m")
    assert isinstance(missing.value, FileNotFoundError)  # what the feature readers catch
    path = latents_path(cfg, "simple", "m")
    write_latents(path, np.array(["a", "b"]), np.ones((2, 2, 2)), "sha")
    ids, latents = read_latents(cfg, "simple", "m")
    assert ids.tolist() == ["a", "b"] and latents.shape == (2, 4) and latents.dtype == np.float32
    assert latents_encoder_sha(path) == "sha"
    write_latents(path, np.array(["a", "a"]), np.ones((2, 4)), "sha")
    with pytest.raises(ValueError, match="duplicate picture ids"):
        read_latents(cfg, "simple", "m")
