"""Training callbacks: periodic resumable checkpoints, reconstruction images for TensorBoard,
and a one-line-per-epoch progress log.

A checkpoint is a folder holding the whole training model (``autoencoder.keras``: weights,
optimizer state, compile config) and ``state.json`` (``epoch`` = epochs completed so far,
1-based count, plus the build parameters), so ``train_model(load=...)`` can continue with
``initial_epoch = state["epoch"]`` and an intact Adam state.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

import keras
from iss.artefacts import replace_folder

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_MODEL = "autoencoder.keras"
CHECKPOINT_STATE = "state.json"


def save_checkpoint(model: keras.Model, folder: Path, state: dict) -> Path:
    """Write ``model`` (with its optimizer) and ``state`` into ``folder``, replacing it atomically.

    The new checkpoint is written beside the old one and swapped in by renames, so an
    interruption while saving leaves the previous checkpoint usable.
    """
    folder = Path(folder)
    with replace_folder(folder) as tmp:
        model.save(tmp / CHECKPOINT_MODEL)
        (tmp / CHECKPOINT_STATE).write_text(json.dumps(state, indent=2, default=str))
    return folder


def read_checkpoint_state(folder: Path) -> dict | None:
    """``state.json`` of a checkpoint folder, or None when there is no complete checkpoint."""
    folder = Path(folder)
    if not (folder / CHECKPOINT_MODEL).is_file() or not (folder / CHECKPOINT_STATE).is_file():
        return None
    return json.loads((folder / CHECKPOINT_STATE).read_text())


class EpochCounter(keras.callbacks.Callback):
    """Remembers the last completed epoch (1-based count) and the logs of each epoch of this run.

    Parameters
    ----------
    initial_epoch : int
        Epochs completed before this run (0 for a fresh model).
    """

    def __init__(self, initial_epoch: int = 0):
        super().__init__()
        self.completed = int(initial_epoch)
        self.history: list[dict] = []

    def on_epoch_end(self, epoch, logs=None):
        self.completed = epoch + 1
        self.history.append({"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}})


class PeriodicCheckpoint(keras.callbacks.Callback):
    """Save a resumable checkpoint every ``every`` epochs (counted from epoch 1, across resumes).

    Parameters
    ----------
    folder : Path
        The checkpoint folder (``models/<type>/<name>/checkpoint``).
    every : int
        Period in epochs; 0 disables periodic saving.
    state : dict
        Extra fields for ``state.json`` (model type, build parameters...).
    """

    def __init__(self, folder: Path, every: int, state: dict):
        super().__init__()
        self.folder = Path(folder)
        self.every = int(every)
        self.state = dict(state)
        self.saved_epochs: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        if self.every > 0 and done % self.every == 0:
            metrics = {k: float(v) for k, v in (logs or {}).items()}
            save_checkpoint(self.model, self.folder, {**self.state, "epoch": done, "metrics": metrics,
                                                      "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
            self.saved_epochs.append(done)
            log.info("checkpoint saved at epoch %d in %s", done, self.folder)


class ReconstructionImages(keras.callbacks.Callback):
    """Write input | reconstruction pairs to TensorBoard every ``every`` epochs.

    Parameters
    ----------
    log_dir : Path
        TensorBoard folder; images go to ``log_dir / "images"``.
    pixels : uint8 array, shape (k, h, w, c)
        A few fixed pictures (from the valid split), so successive epochs are comparable.
    every : int, default=5
        Also written after the first epoch of each run.
    """

    def __init__(self, log_dir: Path, pixels: np.ndarray, every: int = 5):
        super().__init__()
        self.log_dir = Path(log_dir) / "images"
        self.pixels = np.asarray(pixels, dtype=np.uint8)
        self.every = max(1, int(every))
        self._writer = None
        self._first_done = False

    def on_train_begin(self, logs=None):
        import tensorflow as tf

        self._writer = tf.summary.create_file_writer(str(self.log_dir))
        self._first_done = False

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        first_of_run, self._first_done = not self._first_done, True
        if len(self.pixels) == 0 or (done % self.every and not first_of_run):
            return
        import tensorflow as tf

        reconstruction = keras.ops.convert_to_numpy(self.model(self.pixels, training=False)).astype(np.float32)
        inputs = self.pixels.astype(np.float32) / 255.0
        pairs = np.concatenate([inputs, np.clip(reconstruction, 0.0, 1.0)], axis=2)  # side by side
        with self._writer.as_default():
            tf.summary.image("input_vs_reconstruction", pairs, step=done, max_outputs=len(pairs))
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()


class EpochLog(keras.callbacks.Callback):
    """One INFO line per epoch: epoch count, seconds, pictures per second, every metric.

    Readable in a log file, unlike a carriage-return progress bar (which Keras draws as well
    when the output is a terminal).

    Parameters
    ----------
    total_epochs : int
    n_train : int
        Pictures per training epoch, for the pictures/s figure.
    """

    def __init__(self, total_epochs: int, n_train: int):
        super().__init__()
        self.total_epochs = int(total_epochs)
        self.n_train = int(n_train)
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start
        self.seconds.append(seconds)
        metrics = " - ".join(f"{k} {float(v):.5g}" for k, v in (logs or {}).items())
        log.info("epoch %d/%d - %.1f s (%.0f pictures/s) - %s", epoch + 1, self.total_epochs, seconds,
                 self.n_train / max(seconds, 1e-9), metrics)
