"""The `training` and `encode` commands (iss.exec.training, iss.exec.encode) end to end on a tiny cache."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from iss.config import load_config
from iss.db.engine import get_engine
from iss.exec import encode as encode_cmd
from iss.exec import training as training_cmd
from iss.models.encode import load_latents
from tests.models.conftest import fill_cache, write_splits


def test_training_then_encode_commands(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("ISS_ROOT", str(tmp_path))
    monkeypatch.setenv("MODE", "demo")
    cfg = load_config(mode="demo", root=tmp_path)
    cache = fill_cache(cfg, 40)
    engine = get_engine(cfg.database_url)
    write_splits(engine, cache.ids, 32)
    engine.dispose()
    runner = CliRunner()

    result = runner.invoke(training_cmd.app, ["--model-type", "simple", "--model-name", "cli", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "models/simple/cli" in result.output
    result = runner.invoke(training_cmd.app, ["--model-type", "simple", "--load", "cli", "--epochs", "2"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "models" / "simple" / "cli" / "record.json").read_text())
    assert record["initial_epoch"] == 1 and record["epochs"] == 2

    result = runner.invoke(encode_cmd.app, ["--model-type", "simple", "--model-name", "cli", "--all"])
    assert result.exit_code == 0, result.output
    ids, latents = load_latents(cfg, "simple", "cli")
    assert list(ids) == cache.ids and latents.shape == (40, 32)
    result = runner.invoke(encode_cmd.app, ["--model-type", "simple", "--model-name", "cli", "--all",
                                            "--scheduler", "synchronous", "--set", "compute.partition_size=16"])
    assert result.exit_code == 0, result.output
    again_ids, again = load_latents(cfg, "simple", "cli")  # as Dask tasks in this process: the same latents
    assert list(again_ids) == cache.ids
    np.testing.assert_allclose(again, latents, rtol=1e-5, atol=1e-6)
    result = runner.invoke(encode_cmd.app, ["--model-type", "simple", "--model-name", "cli", "--all",
                                            "--scheduler", "tcp://127.0.0.1:9", "--set", "compute.connect_timeout=1"])
    assert result.exit_code == 1 and "no Dask scheduler answers at tcp://127.0.0.1:9" in caplog.text

    # errors are one clear line and exit code 1, not a traceback
    result = runner.invoke(training_cmd.app, ["--model-type", "simple", "--load", "missing"])
    assert result.exit_code == 1
    result = runner.invoke(encode_cmd.app, ["--model-type", "variational", "--model-name", "missing"])
    assert result.exit_code == 1
