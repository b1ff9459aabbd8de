"""The `posters` step's command line: python -m iss.exec.posters (on SQLite and MariaDB)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import yaml
from PIL import Image
from sqlalchemy import select
from typer.testing import CliRunner

from iss.config import PROJ_ROOT
from iss.db import schema
from iss.exec.posters import app


def use_config(poster_env, monkeypatch, tmp_path):
    """Point load_config() at the test config (ISS_CONFIG) and folder (ISS_ROOT)."""
    path = tmp_path / "config_test.yaml"
    path.write_text(yaml.safe_dump(poster_env.cfg.data))
    monkeypatch.setenv("ISS_CONFIG", str(path))
    monkeypatch.setenv("ISS_ROOT", str(poster_env.cfg.root))
    return path


def test_generate_preview_and_regenerate(poster_env, monkeypatch, tmp_path):
    use_config(poster_env, monkeypatch, tmp_path)
    out = poster_env.cfg.path("posters")
    runner = CliRunner()

    result = runner.invoke(app, ["--config-id", "small", "--generate", "2", "--poster-id", "cli", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["cli-2.jpg", "cli-2.pdf", "cli.jpg", "cli.pdf"]
    with poster_env.engine.connect() as conn:
        assert dict(conn.execute(select(schema.posters.c.poster_id, schema.posters.c.seed)).all()) == \
            {"cli": 3, "cli-2": 4}

    # --preview alone draws the layout and generates nothing
    result = runner.invoke(app, ["--config-id", "small", "--preview"])
    assert result.exit_code == 0, result.output
    with Image.open(out / "small-preview.jpg") as preview:
        assert preview.size == (400, 300)
    assert not (out / "small-s0.jpg").exists()

    original = (out / "cli-2.jpg").read_bytes()
    (out / "cli-2.jpg").unlink()
    result = runner.invoke(app, ["--regenerate", "cli-2"])
    assert result.exit_code == 0, result.output
    assert (out / "cli-2.jpg").read_bytes() == original

    # default template (posters.default_template) and default id <config_id>-s<seed>
    result = runner.invoke(app, ["--seed", "9"])
    assert result.exit_code == 0, result.output
    assert (out / "small-s9.jpg").is_file()


def test_errors_exit_non_zero_with_the_message(poster_env, monkeypatch, tmp_path, caplog):
    use_config(poster_env, monkeypatch, tmp_path)
    runner = CliRunner()
    with caplog.at_level(logging.ERROR):
        result = runner.invoke(app, ["--config-id", "missing"])
        assert result.exit_code == 1
        assert "poster template 'missing' not found" in caplog.text
        result = runner.invoke(app, ["--regenerate", "nope"])
        assert result.exit_code == 1
        assert "no poster 'nope' in the database" in caplog.text


def test_python_dash_m_lists_the_shipped_templates():
    env = {k: v for k, v in os.environ.items() if k not in ("ISS_CONFIG", "ISS_ROOT")}
    result = subprocess.run([sys.executable, "-m", "iss.exec.posters", "--list"], cwd=PROJ_ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert {"grid_4x4", "grid_4x4_thin", "heroes_2x2"} <= set(result.stdout.split())
