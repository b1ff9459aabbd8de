"""``make generate_demo`` follows the config like every other step (issue 15, item 11)."""

from __future__ import annotations

from typer.testing import CliRunner

from iss.exec.generate_demo import app


def test_generate_demo_follows_iss_root_iss_config_and_demo_n_frames(tmp_path, monkeypatch):
    root, elsewhere = tmp_path / "root", tmp_path / "cwd"
    elsewhere.mkdir()
    config = tmp_path / "my.yaml"
    config.write_text("paths:\n  source: ext/demo\ndemo:\n  n_frames: 3\n  seed: 5\n")
    monkeypatch.setenv("ISS_ROOT", str(root))
    monkeypatch.setenv("ISS_CONFIG", str(config))
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(app, [])
    assert result.exit_code == 0, result.output
    frames = sorted(p.name for p in (root / "ext" / "demo" / "collections").iterdir())
    assert frames == ["20171113-000000.jpg", "20171113-002000.jpg", "20171113-004000.jpg"]
    assert list(elsewhere.iterdir()) == []  # nothing relative to the current folder


def test_generate_demo_wrong_config_type_is_one_line(tmp_path, monkeypatch, caplog):
    config = tmp_path / "bad.yaml"
    config.write_text("demo:\n  n_frames: many\n")
    monkeypatch.setenv("ISS_CONFIG", str(config))
    result = CliRunner().invoke(app, [])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert [r.getMessage().splitlines()[0] for r in caplog.records if r.levelname == "ERROR"] == [
        f"{config}: demo.n_frames is 'many'; expected a valid integer, unable to parse string as an integer"]
