"""The training step: saved files, record, checkpoints, resume, Ctrl-C, the models table."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sqlalchemy import select

import keras
from iss.config import ConfigError
from iss.db import schema
from iss.models import callbacks as cb
from iss.models.training import TrainingError, register_model, train_model


def _csv_epochs(path):
    with open(path, newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def _models_rows(engine):
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(schema.models))]


def test_train_saves_models_record_logs_and_row(collection):
    cfg, engine, cache = collection
    result = train_model(cfg, engine, "simple_conv", "tiny", verbose=0)
    folder = cfg.path("models") / "simple_conv" / "tiny"
    assert result.model_dir == folder
    for name in ("encoder.keras", "decoder.keras", "record.json", "training.csv", "checkpoint/autoencoder.keras",
                 "checkpoint/state.json"):
        assert (folder / name).is_file(), name
    record = json.loads((folder / "record.json").read_text())
    assert record["epochs"] == 2 and record["initial_epoch"] == 0
    assert [h["epoch"] for h in record["history"]] == [1, 2]
    assert record["latent_shape"] == [3, 6, 16] and record["params"]["variant"] == "fast"
    assert record["training"]["batch_size"] == 16 and "git_revision" in record and record["device"]
    assert np.isfinite(record["metrics"]["val_loss"]) and record["n_train"] == 48 and record["n_valid"] == 16
    assert _csv_epochs(folder / "training.csv") == [0, 1]  # Keras CSVLogger counts from 0
    # TensorBoard: scalars and the input/reconstruction images
    assert list((folder / "logs" / "train").glob("events.out.tfevents.*"))
    assert list((folder / "logs" / "images").glob("events.out.tfevents.*"))
    # the saved encoder is what was trained
    encoder = keras.models.load_model(folder / "encoder.keras")
    x = cache.get_inputs(cache.ids[:4])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(encoder(x)),
                                  keras.ops.convert_to_numpy(result.autoencoder.encoder(x)))
    rows = _models_rows(engine)
    assert len(rows) == 1 and rows[0]["model_name"] == "tiny" and rows[0]["metrics"]["epochs"] == 2
    # re-running replaces the model and its row, it does not add one
    train_model(cfg, engine, "simple_conv", "tiny", epochs=1, verbose=0)
    assert len(_models_rows(engine)) == 1 and _csv_epochs(folder / "training.csv") == [0]


def test_resume_continues_the_epoch_count(collection):
    cfg, engine, _ = collection
    first = train_model(cfg, engine, "simple_conv", "run", verbose=0)
    assert first.fit.epochs_done == 2
    state = json.loads((first.model_dir / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 2
    optimizer_steps = int(keras.models.load_model(first.model_dir / "checkpoint" / "autoencoder.keras")
                          .optimizer.iterations)
    assert optimizer_steps == 2 * 3  # 48 pictures / batch 16 = 3 steps per epoch

    resumed = train_model(cfg, engine, "simple_conv", load="run", epochs=4, verbose=0)
    assert resumed.model_dir == first.model_dir
    assert resumed.fit.initial_epoch == 2 and resumed.fit.epochs_done == 4
    record = json.loads((resumed.model_dir / "record.json").read_text())
    assert record["initial_epoch"] == 2 and record["epochs"] == 4 and record["loaded_from"] == "run"
    assert [h["epoch"] for h in record["history"]] == [3, 4]
    assert _csv_epochs(resumed.model_dir / "training.csv") == [0, 1, 2, 3]  # appended, 0-based
    assert int(resumed.autoencoder.model.optimizer.iterations) == 4 * 3  # Adam state carried over

    with pytest.raises(TrainingError, match="already trained 4 epochs.*--epochs"):
        train_model(cfg, engine, "simple_conv", load="run", epochs=4, verbose=0)
    with pytest.raises(TrainingError, match="nothing saved.*saved simple_conv models: run"):
        train_model(cfg, engine, "simple_conv", load="missing", verbose=0)


def test_resume_into_another_name_keeps_the_source(collection):
    cfg, engine, _ = collection
    train_model(cfg, engine, "variational_conv", "base", epochs=1, verbose=0)
    result = train_model(cfg, engine, "variational_conv", "longer", load="base", epochs=2, verbose=0)
    assert result.fit.initial_epoch == 1 and result.fit.epochs_done == 2
    assert _csv_epochs(result.model_dir / "training.csv") == [0, 1]
    assert json.loads((cfg.path("models") / "variational_conv" / "base" / "record.json").read_text())["epochs"] == 1
    assert {"kl_loss", "reconstruction_loss"} <= set(result.metrics)
    assert {r["model_name"] for r in _models_rows(engine)} == {"base", "longer"}


def test_ctrl_c_saves_the_model(collection, monkeypatch):
    cfg, engine, _ = collection

    def interrupt(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(cb.EpochLog, "on_epoch_end", interrupt)
    result = train_model(cfg, engine, "simple", "stopped", epochs=5, verbose=0)
    assert result.interrupted and result.fit.epochs_done == 2
    record = json.loads((result.model_dir / "record.json").read_text())
    assert record["interrupted"] is True and record["epochs"] == 2
    assert (result.model_dir / "encoder.keras").is_file()
    assert cb.read_checkpoint_state(result.model_dir / "checkpoint")["epoch"] == 2
    monkeypatch.undo()
    resumed = train_model(cfg, engine, "simple", load="stopped", epochs=3, verbose=0)
    assert resumed.fit.initial_epoch == 2 and resumed.fit.epochs_done == 3


def test_early_stopping_restores_the_best_weights(collection):
    cfg, engine, _ = collection
    cfg = cfg.with_overrides({"training": {"early_stopping_patience": 2, "learning_rate": 0.05}})
    result = train_model(cfg, engine, "simple", "unstable", epochs=6, verbose=0)
    val = [h["val_loss"] for h in result.fit.history]
    # whether it stopped early or not, the saved weights are those of the best validation epoch
    assert result.fit.best_epoch == int(np.argmin(val)) + 1
    assert result.metrics["val_loss"] == pytest.approx(min(val), rel=1e-4)
    assert result.metrics["best_val_loss"] == min(val)


def test_unknown_model_type(collection):
    cfg, engine, _ = collection
    with pytest.raises(TrainingError, match="unknown model type 'conv'"):
        train_model(cfg, engine, "conv")


def test_models_row_upserted_on_both_backends(engine, tmp_path):
    first = register_model(engine, "simple_conv", "demo", tmp_path / "a", {"params": {"variant": "fast"}},
                           {"val_loss": 0.5})
    second = register_model(engine, "simple_conv", "demo", tmp_path / "b", {"params": {"variant": "fast"}},
                            {"val_loss": 0.25})
    other = register_model(engine, "simple", "demo", tmp_path / "c", {}, {})
    assert first == second != other
    rows = {(r["model_type"], r["model_name"]): r for r in _models_rows(engine)}
    assert len(rows) == 2
    assert rows["simple_conv", "demo"]["metrics"] == {"val_loss": 0.25}
    assert rows["simple_conv", "demo"]["path"] == str(tmp_path / "b")


def test_the_autoencoder_can_take_the_thumbnails(collection):
    """training.input: thumb trains on the 96x54 thumbnails; encode then feeds it the thumbnails."""
    from iss.models.encode import encode_collection, load_latents

    cfg, engine, cache = collection
    cfg = cfg.with_overrides({"training": {"input": "thumb"},
                              "models": {"simple_conv": {"latent_shape": [6, 12, 4]}}})
    result = train_model(cfg, engine, "simple_conv", "thumbs", epochs=1, verbose=0)
    assert result.autoencoder.input_shape == (54, 96, 3) and result.record["input_shape"] == [54, 96, 3]
    encode_collection(cfg, engine, "simple_conv", "thumbs")
    ids, latents = load_latents(cfg, "simple_conv", "thumbs")
    assert list(ids) == cache.ids and latents.shape == (len(ids), 6 * 12 * 4)
    expected = keras.ops.convert_to_numpy(result.autoencoder.encoder(cache.get_thumbs(cache.ids[:3])))
    np.testing.assert_allclose(latents[:3], expected.reshape(3, -1), rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="training.input is 'full'; expected 'input' or 'thumb'"):
        cfg.with_overrides({"training": {"input": "full"}})
