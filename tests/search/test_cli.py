"""The ``iss`` command: ``similar`` (table and JSON), ``near-duplicates`` and ``outliers`` CSV, ``index``,
and clear failures."""

from __future__ import annotations

import csv
import json

import pytest
import yaml
from typer.testing import CliRunner

from iss.cli import app
from tests.search.conftest import out_of_collection

pytestmark = pytest.mark.slow  # uses the shared trained setup


@pytest.fixture(scope="module")
def runner(search_env, tmp_path_factory):
    """A CliRunner whose environment points the config at the session's setup."""
    config = tmp_path_factory.mktemp("cli") / "config_search.yaml"
    config.write_text(yaml.safe_dump(search_env.cfg.data))
    return CliRunner(env={"ISS_CONFIG": str(config), "ISS_ROOT": str(search_env.cfg.root), "MODE": "search"})


def test_similar_lists_the_picture_itself_first(runner, search_env):
    picture = sorted(search_env.collection.glob("*.jpg"))[4]
    result = runner.invoke(app, ["similar", str(picture), "--k", "5"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.strip().startswith("rank"))
    rows = lines[header + 1: header + 6]
    rank, first, distance = rows[0].split()[:3]
    assert (rank, first) == ("1", picture.stem) and float(distance) < 1e-3  # LiteRT vs TensorFlow round-off
    assert len(rows) == 5 and all(len(row.split()) >= 6 for row in rows)  # rank id distance confidence cluster time
    assert "good match" in result.output


def test_similar_says_no_good_match_for_a_picture_from_elsewhere(runner, tmp_path):
    query = tmp_path / "item.png"
    query.write_bytes(out_of_collection(n_fashion=1)["fashion_mnist_0"])
    result = runner.invoke(app, ["similar", str(query)])
    assert result.exit_code == 0, result.output
    assert "no good match" in result.output and "  - " in result.output
    as_json = json.loads(runner.invoke(app, ["similar", str(query), "--json", "--k", "3"]).output)
    assert as_json["good_match"] is False and len(as_json["results"]) == 3


def test_similar_fails_clearly(runner, tmp_path):
    missing = runner.invoke(app, ["similar", str(tmp_path / "nope.jpg")])
    assert missing.exit_code == 2 and "no such file" in missing.output
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    bad = runner.invoke(app, ["similar", str(text)])
    assert bad.exit_code == 2 and "not a picture" in bad.output
    unknown_model = runner.invoke(app, ["similar", str(text), "--model-name", "nonexistent"])
    assert unknown_model.exit_code == 1 and "no trained encoder" in unknown_model.output


def test_near_duplicates_and_outliers_csv(runner, search_env, tmp_path):
    pairs, keep = tmp_path / "out" / "pairs.csv", tmp_path / "out" / "keep.csv"
    result = runner.invoke(app, ["near-duplicates", "--pairs", str(pairs), "--out", str(keep)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(pairs.open()))
    assert len(rows) == len(search_env.service.near_duplicates())
    threshold = search_env.service.calibration.near_duplicate_distance
    assert all(float(r["distance"]) <= threshold for r in rows)
    sets = search_env.service.near_duplicate_sets()
    kept = list(csv.DictReader(keep.open()))
    assert len(kept) == sum(s["size"] for s in sets) and sum(r["keep"] == "yes" for r in kept) == len(sets)

    outliers = tmp_path / "outliers.csv"
    result = runner.invoke(app, ["outliers", "--out", str(outliers), "--n", "7"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(outliers.open()))
    assert [int(r["rank"]) for r in rows] == list(range(1, 8))
    assert rows[0]["pictures_id"] == search_env.service.outliers(1)[0]["pictures_id"]


def test_without_out_both_lists_print_to_the_terminal(runner, search_env):
    result = runner.invoke(app, ["outliers", "--n", "5"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()[:1].isdigit()]
    assert len(lines) == 5 and lines[0].split()[1] == search_env.service.outliers(1)[0]["pictures_id"]
    result = runner.invoke(app, ["near-duplicates", "--limit", "3"])
    assert result.exit_code == 0, result.output
    assert "sets of near-duplicates" in result.output
    assert result.output.count("\nset ") == min(3, len(search_env.service.near_duplicate_sets()))


def test_index_command_reports_the_index(runner, search_env):
    result = runner.invoke(app, ["index"])
    assert result.exit_code == 0, result.output
    assert f"{len(search_env.service.index)} pictures" in result.output


def test_serve_exec_module_has_the_same_options():
    from iss.exec.serve import app as exec_app

    result = CliRunner().invoke(exec_app, ["--help"])
    assert result.exit_code == 0 and "--host" in result.output and "--port" in result.output


def test_similar_never_imports_tensorflow(search_env, tmp_path):
    """The command a person runs, in a fresh process: LiteRT encodes the query, TensorFlow stays out."""
    import os
    import subprocess
    import sys

    config = tmp_path / "config_search.yaml"
    config.write_text(yaml.safe_dump(search_env.cfg.data))
    picture = sorted(search_env.collection.glob("*.jpg"))[7]
    script = ("import json, sys\n"
              "from typer.testing import CliRunner\n"
              "from iss.cli import app\n"
              f"result = CliRunner().invoke(app, ['similar', {str(picture)!r}, '--json', '--k', '3'])\n"
              "print(json.dumps({'exit': result.exit_code, 'output': result.output,\n"
              "                  'tensorflow': 'tensorflow' in sys.modules, 'keras': 'keras' in sys.modules}))\n")
    env = {**os.environ, "ISS_CONFIG": str(config), "ISS_ROOT": str(search_env.cfg.root), "MODE": "search"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["exit"] == 0, report["output"]
    answer = json.loads(report["output"])
    assert answer["results"][0]["pictures_id"] == picture.stem and answer["verdict"] == "good match (a copy)"
    assert report["tensorflow"] is False and report["keras"] is False
