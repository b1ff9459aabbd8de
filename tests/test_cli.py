"""The one command: `iss --help` lists every step, help is plain text, steps take --set, and `iss` stays
light (no TensorFlow, UMAP, bokeh... at import: `iss similar` must start fast)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from iss.cli import app
from iss.config import ConfigError
from iss.exec.common import parse_set_options, plain_help

STEPS = ["demo", "generate-demo", "sync-collections", "populate-db", "sampling", "training", "encode",
         "exec-clustering", "reports", "facets", "posters"]
OTHERS = ["similar", "serve", "index", "near-duplicates", "outliers", "name-cluster"]
HEAVY = ["tensorflow", "keras", "umap", "numba", "bokeh", "matplotlib", "sklearn", "pandas", "fastapi", "uvicorn"]


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


def test_help_lists_every_step_and_command(runner):
    result = runner.invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for command in STEPS + OTHERS:
        assert f" {command} " in result.output, command


@pytest.mark.parametrize("command", STEPS + OTHERS)
def test_help_is_plain_text(runner, command):
    result = runner.invoke(app, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for markup in ("``", ":func:", ":mod:", ":class:"):
        assert markup not in result.output, (command, markup)


@pytest.mark.parametrize("command", [s for s in STEPS if s != "demo"] + ["demo"])
def test_steps_take_mode_and_set(runner, command):
    output = runner.invoke(app, [command, "--help"], terminal_width=200).output
    assert "--set" in output and "--mode" in output


def test_common_overrides_are_named(runner):
    assert "--n-clusters" in runner.invoke(app, ["exec-clustering", "--help"], terminal_width=200).output
    for command in ("training", "encode", "exec-clustering"):
        assert "--model-type" in runner.invoke(app, [command, "--help"], terminal_width=200).output
    assert "--run-id" in runner.invoke(app, ["posters", "--help"], terminal_width=200).output


def test_importing_the_command_stays_light():
    code = ("import json, sys, iss.cli; "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                       text=True).stdout)
    assert loaded == []


def test_set_options_become_nested_overrides():
    assert parse_set_options(["clustering.n2d.n_clusters=8", "clustering.n2d.method=gmm", "demo.seed=3",
                              "clustering.n2d.k_range=[2, 6]", "paths.tle="]) == {
        "clustering": {"n2d": {"n_clusters": 8, "method": "gmm", "k_range": [2, 6]}},
        "demo": {"seed": 3}, "paths": {"tle": ""}}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_set_options(["clustering.n2d.n_clusters"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_set_options(["=3"])


def test_a_bad_set_is_one_clear_line(runner, caplog):
    result = runner.invoke(app, ["sampling", "--set", "sampling.seed"])
    assert result.exit_code == 1 and result.exception is None or isinstance(result.exception, SystemExit)
    assert any("expected KEY=VALUE" in r.getMessage() for r in caplog.records)


def test_plain_help_strips_markup():
    assert plain_help("Reads ``paths.cache`` via :func:`iss.data.cache.ImageCache` and `x`.\n\nMore.") == \
        "Reads paths.cache via iss.data.cache.ImageCache and x."


def test_an_unknown_clustering_type_lists_the_valid_ones(runner, caplog, tmp_path, monkeypatch):
    """Issue 16: `--clustering-type kmeans` (make exec_clustering CLUSTERING=kmeans) names the value and every
    registered type instead of asking for a config key, and so does the config key clustering.default."""
    monkeypatch.setenv("ISS_ROOT", str(tmp_path))
    monkeypatch.setenv("MODE", "demo")
    monkeypatch.delenv("ISS_CONFIG", raising=False)
    for args, expected in (
            (["--clustering-type", "kmeans"], "clustering_type='kmeans': expected one of "
                                              "'classical', 'advanced', 'n2d', 'hdbscan'"),
            (["--set", "clustering.default=kmeans"], "clustering.default is 'kmeans'; expected one of "
                                                     "'classical', 'advanced', 'n2d', 'hdbscan'")):
        caplog.clear()
        result = runner.invoke(app, ["exec-clustering", *args, "--no-reports"])
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # one line, no traceback
        errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert len(errors) == 1 and expected in errors[0], errors
