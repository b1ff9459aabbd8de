"""Training step: fit an autoencoder on the train split, validate on the valid split, save it.

Reads
    the ``splits`` table (sampling), the ingest cache ``cfg.path("cache")`` (decoded pixels),
    config ``training.*`` and ``models.<model_type>``; with ``load``, the checkpoint of
    ``models/<model_type>/<load>/``.
Writes, under ``cfg.path("models") / <model_type> / <model_name> /``
    ``encoder.keras``, ``decoder.keras`` (functional models, pixels 0..255 in, [0, 1] out);
    ``record.json`` (config, parameters, metrics, epochs, history, git revision, device);
    ``checkpoint/`` (whole training model with optimizer state + ``state.json``: every
    ``training.checkpoint_every`` epochs and at the end, so training can resume);
    ``training.csv`` (Keras CSVLogger, ``epoch`` 0-based as Keras counts, appended on resume);
    ``logs/`` (TensorBoard: train/validation scalars, ``images/`` input | reconstruction pairs);
    and a row of the ``models`` table (upserted on model type + name).

Ctrl-C during training saves the model as it is (weights, checkpoint, record with
``interrupted: true``), as the original project did; resume it with ``load``.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from sqlalchemy import select
from sqlalchemy.engine import Engine

import keras
from iss.artefacts import atomic_path, write_text
from iss.config import PROJ_ROOT, Config
from iss.data.cache import ImageCache
from iss.db import schema
from iss.db.queries import upsert
from iss.models import callbacks as cb
from iss.models.autoencoders import (MODEL_TYPES, Autoencoder, assemble, build_autoencoder, compile_model,
                                     from_training_model)
from iss.models.dataset import load_split_datasets
from iss.models.lite import export_encoder
from iss.models.store import DECODER_FILE, ENCODER_FILE, RECORD_FILE, model_dir  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

CSV_FILE = "training.csv"
LOGS_DIR = "logs"

# the cached pictures an autoencoder can take: ingest.input_size (48x27) or ingest.thumb_size (96x54)
INPUT_SIZES = ("input", "thumb")


class TrainingError(Exception):
    """Training cannot start: missing data, unknown model, nothing to resume..."""


@dataclass
class FitResult:
    """What one call to :func:`fit` did.

    Attributes
    ----------
    initial_epoch, epochs_done : int
        Epoch counts before and after this run (1-based counts; ``epochs_done - initial_epoch``
        epochs ran).
    history : list of dict
        One dict per epoch of this run: ``epoch`` (1-based) and every logged metric.
    epoch_seconds : list of float
        Wall time of each epoch of this run.
    interrupted : bool
        Ctrl-C stopped the run.
    stopped_early : bool
    best_epoch : int or None
        Epoch whose weights were restored by early stopping (1-based).
    """

    initial_epoch: int
    epochs_done: int
    history: list[dict]
    epoch_seconds: list[float]
    interrupted: bool = False
    stopped_early: bool = False
    best_epoch: int | None = None


@dataclass
class TrainResult:
    """What :func:`train_model` produced."""

    model_type: str
    model_name: str
    model_dir: Path
    autoencoder: Autoencoder
    fit: FitResult
    metrics: dict
    record: dict = field(repr=False)

    @property
    def interrupted(self) -> bool:
        return self.fit.interrupted


# --------------------------------------------------------------------------------------------
# Environment: seeds, device, mixed precision
# --------------------------------------------------------------------------------------------

def describe_device() -> str:
    """``"GPU: <names>"`` when TensorFlow sees a GPU (it is then used), else ``"CPU (<n> cores)"``."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = []
        for gpu in gpus:
            try:
                names.append(tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name))
            except (ValueError, RuntimeError):
                names.append(gpu.name)
        return "GPU: " + ", ".join(names)
    return f"CPU ({os.cpu_count()} cores)"


@contextlib.contextmanager
def precision_policy(mixed: bool):
    """Use ``mixed_float16`` inside the block when ``mixed`` (output layers stay float32)."""
    previous = keras.mixed_precision.dtype_policy().name
    if mixed:
        if not tf.config.list_physical_devices("GPU"):
            log.warning("training.mixed_precision is on but there is no GPU: float16 is slow on a CPU")
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def git_revision(root: Path = PROJ_ROOT) -> str | None:
    """``git rev-parse HEAD`` of the project, or None outside a repository / before the first commit."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


# --------------------------------------------------------------------------------------------
# The training loop
# --------------------------------------------------------------------------------------------

def _trim_csv(path: Path, initial_epoch: int) -> None:
    """Drop CSV rows of epochs at or after ``initial_epoch`` (0-based), left by a run that
    went on past its last checkpoint, so the appended log has each epoch once."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or "epoch" not in rows[0]:
        return
    col = rows[0].index("epoch")
    kept = [rows[0]] + [r for r in rows[1:] if r and int(float(r[col])) < initial_epoch]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(kept)


def fit(ae: Autoencoder, train_ds: tf.data.Dataset, valid_ds: tf.data.Dataset | None = None, *, epochs: int,
        initial_epoch: int = 0, out_dir: Path | None = None, patience: int = 5, checkpoint_every: int = 0,
        checkpoint_state: dict | None = None, image_pixels: np.ndarray | None = None, image_every: int = 5,
        tensorboard: bool = True, n_train: int | None = None, verbose: int | str = "auto",
        extra_callbacks: list | None = None) -> FitResult:
    """Fit a compiled autoencoder with the project's callbacks.

    Parameters
    ----------
    ae : Autoencoder
        Compiled (``ae.compile(...)`` or loaded from a checkpoint).
    train_ds, valid_ds : tf.data.Dataset
        ``(pixels, target)`` batches (:func:`iss.models.dataset.make_dataset`). Without
        ``valid_ds`` early stopping watches the training loss.
    epochs : int
        Epoch to stop at, counted from the model's first epoch (Keras ``epochs``).
    initial_epoch : int, default=0
        Epochs already done (resume).
    out_dir : Path, optional
        Model folder for ``training.csv``, ``logs/`` and ``checkpoint/``; None writes nothing.
    patience : int, default=5
        Early stopping patience in epochs (on ``val_loss``), best weights restored; 0 disables.
    checkpoint_every : int, default=0
        Save a resumable checkpoint every N epochs (0: never during the run).
    checkpoint_state : dict, optional
        Extra fields for the checkpoint's ``state.json``.
    image_pixels : uint8 array (k, h, w, c), optional
        Pictures whose reconstructions go to TensorBoard every ``image_every`` epochs.
    tensorboard : bool, default=True
    n_train : int, optional
        Training pictures per epoch, for the pictures/s log line.
    verbose : int or "auto"
        Keras progress bar: "auto" draws it only on a terminal (a log file gets one line per epoch).
    extra_callbacks : list of keras.callbacks.Callback, optional
        Run after the project's own.

    Returns
    -------
    FitResult
        Ctrl-C ends the fit early with ``interrupted=True`` instead of raising.
    """
    counter = cb.EpochCounter(initial_epoch)
    timer = cb.EpochLog(epochs, n_train or 0)
    callbacks: list[keras.callbacks.Callback] = [counter, timer]
    monitor = "val_loss" if valid_ds is not None else "loss"
    early = None
    if patience and patience > 0:
        early = keras.callbacks.EarlyStopping(monitor=monitor, patience=int(patience), restore_best_weights=True)
        callbacks.append(early)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        _trim_csv(out_dir / CSV_FILE, initial_epoch)
        callbacks.append(keras.callbacks.CSVLogger(str(out_dir / CSV_FILE), append=initial_epoch > 0))
        if tensorboard:
            callbacks.append(keras.callbacks.TensorBoard(log_dir=str(out_dir / LOGS_DIR), write_graph=False,
                                                         update_freq="epoch"))
            if image_pixels is not None and len(image_pixels):
                callbacks.append(cb.ReconstructionImages(out_dir / LOGS_DIR, image_pixels, every=image_every))
        if checkpoint_every:
            callbacks.append(cb.PeriodicCheckpoint(out_dir / cb.CHECKPOINT_DIR, checkpoint_every,
                                                   checkpoint_state or {}))
    callbacks.extend(extra_callbacks or [])
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 0
    interrupted = False
    try:
        ae.model.fit(train_ds, validation_data=valid_ds, epochs=int(epochs), initial_epoch=int(initial_epoch),
                     callbacks=callbacks, verbose=verbose, shuffle=False)  # the dataset shuffles
    except KeyboardInterrupt:
        interrupted = True
        log.warning("interrupted (Ctrl-C) after %d completed epochs: saving the model as it is", counter.completed)
    stopped = bool(early is not None and early.stopped_epoch > 0)
    best = (early.best_epoch + 1) if early is not None and early.best_weights is not None and not interrupted else None
    return FitResult(initial_epoch=int(initial_epoch), epochs_done=counter.completed, history=counter.history,
                     epoch_seconds=timer.seconds, interrupted=interrupted, stopped_early=stopped, best_epoch=best)


# --------------------------------------------------------------------------------------------
# Models on disk and in the database
# --------------------------------------------------------------------------------------------

def available_models(cfg: Config, model_type: str) -> list[str]:
    """Names of the saved models of a type (folders holding an encoder or a checkpoint)."""
    root = cfg.path("models") / model_type
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if (p / ENCODER_FILE).is_file() or cb.read_checkpoint_state(p / cb.CHECKPOINT_DIR))


def _save_keras(model: keras.Model, path: Path) -> None:
    """Save a ``.keras`` file atomically (write beside, then rename)."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def save_model(ae: Autoencoder, folder: Path, record: dict) -> Path:
    """Write ``encoder.keras``, ``decoder.keras``, ``record.json`` and the LiteRT export of the encoder
    (``encoder.tflite``, what ``iss similar`` runs without TensorFlow) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    _save_keras(ae.encoder, folder / ENCODER_FILE)
    _save_keras(ae.decoder, folder / DECODER_FILE)
    try:
        export_encoder(ae.encoder, folder)
    except Exception as exc:  # noqa: BLE001 - the search re-exports on first use; the model itself is saved
        log.warning("could not export the encoder to LiteRT (%s); the search will retry on first use", exc)
    write_text(folder / RECORD_FILE, json.dumps(_jsonable(record), indent=2))
    return folder


def read_record(folder: Path) -> dict:
    """``record.json`` of a model folder ({} when absent)."""
    path = Path(folder) / RECORD_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def register_model(engine: Engine, model_type: str, model_name: str, path: Path, config: dict,
                   metrics: dict) -> int:
    """Upsert the ``models`` row of ``(model_type, model_name)``; returns its ``model_id``."""
    table = schema.models
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    with engine.begin() as conn:
        existing = conn.execute(select(table.c.model_id).where(
            (table.c.model_type == model_type) & (table.c.model_name == model_name))).scalar_one_or_none()
        row = {"model_type": model_type, "model_name": model_name, "path": str(path),
               "config": _jsonable(config), "metrics": _jsonable(metrics), "created_at": now}
        if existing is not None:
            row["model_id"] = existing
        upsert(conn, table, [row])
        return int(conn.execute(select(table.c.model_id).where(
            (table.c.model_type == model_type) & (table.c.model_name == model_name))).scalar_one())


def load_for_training(cfg: Config, model_type: str, name: str) -> tuple[Autoencoder, int]:
    """Load model ``name`` to continue training: its checkpoint (optimizer state kept) if any, else
    its saved encoder and decoder (fresh optimizer). Returns the autoencoder, compiled, and the
    number of epochs it has done."""
    folder = model_dir(cfg, model_type, name)
    state = cb.read_checkpoint_state(folder / cb.CHECKPOINT_DIR)
    if state is not None:
        model = keras.models.load_model(folder / cb.CHECKPOINT_DIR / cb.CHECKPOINT_MODEL)
        ae = from_training_model(model_type, state.get("params", {}), model)
        if model.optimizer is None:
            compile_model(model, float(cfg.get("training.learning_rate")))
        log.info("resuming %s/%s from its checkpoint at epoch %d", model_type, name, state["epoch"])
        return ae, int(state["epoch"])
    if (folder / ENCODER_FILE).is_file() and (folder / DECODER_FILE).is_file():
        record = read_record(folder)
        encoder = keras.models.load_model(folder / ENCODER_FILE)
        decoder = keras.models.load_model(folder / DECODER_FILE)
        input_shape = tuple(int(s) for s in encoder.inputs[0].shape[1:])
        ae = assemble(model_type, input_shape, record.get("params", {}), encoder, decoder)
        compile_model(ae.model, float(cfg.get("training.learning_rate")))
        log.warning("%s has no checkpoint: resuming from its saved encoder/decoder with a fresh optimizer", folder)
        return ae, int(record.get("epochs", 0))
    names = available_models(cfg, model_type)
    raise TrainingError(f"cannot load {model_type} model {name!r}: nothing saved in {folder}; "
                        f"saved {model_type} models: {', '.join(names) or 'none (train one first)'}")


# --------------------------------------------------------------------------------------------
# The step
# --------------------------------------------------------------------------------------------

def training_settings(cfg: Config, epochs: int | None = None) -> dict:
    """``training.*`` (every key filled by the config schema); ``epochs`` overrides the config's."""
    settings = cfg.section("training")
    if epochs is not None:
        settings["epochs"] = int(epochs)
    if int(settings["epochs"]) < 1 or int(settings["batch_size"]) < 1:
        raise TrainingError(f"training.epochs and training.batch_size must be >= 1, got "
                            f"{settings['epochs']} and {settings['batch_size']}")
    return settings


def train_model(cfg: Config, engine: Engine, model_type: str, model_name: str | None = None,
                load: str | None = None, epochs: int | None = None, verbose: int | str = "auto") -> TrainResult:
    """Train (or resume training) an autoencoder on the train split and save it.

    Parameters
    ----------
    cfg : Config
    engine : Engine
        Database with the ``splits`` table filled by sampling; receives the ``models`` row.
    model_type : {"simple", "simple_conv", "variational", "variational_conv"}
    model_name : str, optional
        Output folder name; default ``load`` when resuming, else ``training.model_name``.
    load : str, optional
        Resume model ``load`` of the same type from its checkpoint, continuing its epoch count.
    epochs : int, optional
        Total epoch count to reach (default ``training.epochs``); a resumed model at epoch
        ``k`` trains epochs ``k+1..epochs``.
    verbose : int or "auto"
        Keras progress bar ("auto": only on a terminal; a log gets one line per epoch).

    Returns
    -------
    TrainResult

    Raises
    ------
    TrainingError
        Unknown model type, empty train split, nothing to resume, or nothing left to train.
    """
    if model_type not in MODEL_TYPES:
        raise TrainingError(f"unknown model type {model_type!r}; expected one of {', '.join(MODEL_TYPES)}")
    settings = training_settings(cfg, epochs)
    model_name = model_name or load or str(cfg.get("training.model_name"))
    params = cfg.section(f"models.{model_type}")
    out_dir = model_dir(cfg, model_type, model_name)
    seed = int(settings["seed"])
    keras.utils.set_random_seed(seed)
    device = describe_device()
    log.info("training %s/%s on %s", model_type, model_name, device)

    cache = ImageCache(cfg.path("cache"))
    size = str(settings["input"])
    if size not in INPUT_SIZES:
        raise TrainingError(f"training.input={size!r}: expected one of {', '.join(INPUT_SIZES)} (the cached pictures "
                            f"the autoencoder takes: ingest.input_size or ingest.thumb_size)")
    images, input_shape = (cache.inputs, cache.input_shape) if size == "input" else (cache.thumbs, cache.thumb_shape)
    train_ds, valid_ds, counts, valid_rows = load_split_datasets(
        cache, engine, int(settings["batch_size"]), seed=seed,
        max_in_memory_bytes=int(float(settings["max_in_memory_mb"]) * 2 ** 20), images=images)
    if valid_ds is None:
        log.warning("the valid split is empty: early stopping watches the training loss instead")
    log.info("%d training and %d validation pictures of %s", counts["train"], counts["valid"], input_shape)

    with precision_policy(bool(settings["mixed_precision"])):
        if load:
            ae, initial_epoch = load_for_training(cfg, model_type, load)
            if ae.input_shape != input_shape:
                raise TrainingError(f"model {load!r} takes pictures of {ae.input_shape} but training.input={size!r} "
                                    f"gives {input_shape}; train a new model instead of --load")
            source_dir = model_dir(cfg, model_type, load)
            if source_dir != out_dir and (source_dir / CSV_FILE).is_file():
                out_dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source_dir / CSV_FILE, out_dir / CSV_FILE)
        else:
            for stale in (cb.CHECKPOINT_DIR, LOGS_DIR, CSV_FILE):  # a fresh model: no mixing with old logs
                target = out_dir / stale
                shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
            ae = build_autoencoder(model_type, input_shape, **params)
            ae.compile(float(settings["learning_rate"]), jit_compile=bool(settings["jit_compile"]))
            initial_epoch = 0
        total_epochs = int(settings["epochs"])
        if initial_epoch >= total_epochs:
            raise TrainingError(f"{model_type}/{load} has already trained {initial_epoch} epochs; pass "
                                f"--epochs larger than {initial_epoch} to continue it")
        log.info("encoder %s params, decoder %s params, latent %s; epochs %d..%d",
                 f"{ae.encoder.count_params():,}", f"{ae.decoder.count_params():,}", ae.latent_shape,
                 initial_epoch + 1, total_epochs)

        state = {"model_type": model_type, "model_name": model_name, "params": ae.params}
        sample = np.asarray(images[np.sort(valid_rows)[:8]]) if len(valid_rows) else None
        started = time.perf_counter()
        result = fit(ae, train_ds, valid_ds, epochs=total_epochs, initial_epoch=initial_epoch, out_dir=out_dir,
                     patience=int(settings["early_stopping_patience"]),
                     checkpoint_every=int(settings["checkpoint_every"]), checkpoint_state=state,
                     image_pixels=sample, image_every=int(settings["image_every"]), n_train=counts["train"],
                     verbose=verbose)
        seconds = time.perf_counter() - started

        metrics = {}
        if result.history:
            metrics.update({k: v for k, v in result.history[-1].items() if k != "epoch"})
        if valid_ds is not None and not result.interrupted:
            # the saved weights may be the restored best ones: score exactly those
            evaluated = ae.model.evaluate(valid_ds, verbose=0, return_dict=True)
            metrics.update({f"val_{k}": float(v) for k, v in evaluated.items()})
        if result.history and any("val_loss" in h for h in result.history):
            metrics["best_val_loss"] = min(h["val_loss"] for h in result.history if "val_loss" in h)

        record = {
            "model_type": model_type, "model_name": model_name, "params": ae.params,
            "input_shape": list(ae.input_shape), "latent_shape": list(ae.latent_shape), "latent_dim": ae.latent_dim,
            "training": {k: settings[k] for k in sorted(settings)}, "config_file": str(cfg.source),
            "metrics": metrics, "epochs": result.epochs_done, "initial_epoch": result.initial_epoch,
            "best_epoch": result.best_epoch, "stopped_early": result.stopped_early,
            "interrupted": result.interrupted, "loaded_from": load, "n_train": counts["train"],
            "n_valid": counts["valid"], "seconds": round(seconds, 2),
            "seconds_per_epoch": [round(s, 3) for s in result.epoch_seconds], "history": result.history,
            "device": device, "git_revision": git_revision(),
            "saved_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        save_model(ae, out_dir, record)
        cb.save_checkpoint(ae.model, out_dir / cb.CHECKPOINT_DIR,
                           {**state, "epoch": result.epochs_done, "metrics": metrics})
        register_model(engine, model_type, model_name, out_dir,
                       {"params": ae.params, "training": record["training"], "input_shape": record["input_shape"]},
                       {**metrics, "epochs": result.epochs_done, "interrupted": result.interrupted})
    log.info("saved %s (%d epochs%s) - val_loss %.5g", out_dir, result.epochs_done,
             ", interrupted" if result.interrupted else "", metrics.get("val_loss", float("nan")))
    return TrainResult(model_type, model_name, out_dir, ae, result, metrics, record)
