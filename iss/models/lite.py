"""The trained encoder as a LiteRT (TensorFlow Lite) flatbuffer, for encoding a few pictures fast.

Importing TensorFlow costs 5-15 s of wall time on a 2-core machine, which a one-picture
command like ``iss similar`` cannot afford. So training also exports the encoder with Keras's
``Model.export(format="litert")`` (TensorFlow's own converter, at training time) to
``encoder.tflite`` beside ``encoder.keras``; queries run it with Google's ``ai-edge-litert``
interpreter, which imports in ~0.03 s, loads in ~0.01 s and never imports TensorFlow.
It computes the same latents as :func:`iss.models.encode.encode_images` to float32 round-off
(measured: at most ~3e-7 apart on the four model types).

``encoder.tflite.json`` records the SHA-256 of the ``encoder.keras`` the export came from, so a
retrained encoder is never paired with a stale export: :func:`ensure_lite_encoder` re-exports
(importing TensorFlow, once) when the record does not match.

Measured alternatives (see README, "Similar-picture search"): ONNX Runtime via ``tf2onnx`` is as
fast to run but its export needs two more packages and takes 30 s for the ``original``
convolutional variant (2.4 s here); Keras 3 on another backend imports JAX (numpy backend
included), ~1-2 s before any work.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import numpy as np

from iss.artefacts import atomic_path
from iss.models.store import ENCODER_FILE, EncodeError, file_sha256

log = logging.getLogger(__name__)

LITE_ENCODER_FILE = "encoder.tflite"
LITE_RECORD_FILE = "encoder.tflite.json"


def export_encoder(encoder, folder: str | os.PathLike) -> Path:
    """Export a Keras encoder to ``folder / encoder.tflite`` (imports TensorFlow).

    The exported model maps float32 pixels 0..255 (n, h, w, c) to the encoder's first output
    (``z_mean`` for a VAE, whose sampled ``z`` is left out). ``encoder.tflite.json`` records
    the SHA-256 of ``folder / encoder.keras`` when it exists.

    Returns
    -------
    Path
        The ``.tflite`` file written (atomically: written beside, then renamed).
    """
    import keras

    folder = Path(folder)
    outputs = encoder.outputs[0] if isinstance(encoder.outputs, (list, tuple)) else encoder.outputs
    model = keras.Model(encoder.inputs, outputs, name="encoder_export")
    target = folder / LITE_ENCODER_FILE
    with atomic_path(target) as tmp:
        model.export(str(tmp), format="litert", verbose=False)
    source = folder / ENCODER_FILE
    record = {"encoder_sha256": file_sha256(source) if source.is_file() else None,
              "input_shape": [int(s) for s in encoder.inputs[0].shape[1:]],
              "latent_dim": int(np.prod(outputs.shape[1:]))}
    (folder / LITE_RECORD_FILE).write_text(json.dumps(record, indent=2))
    return target


def lite_encoder_is_current(folder: str | os.PathLike) -> bool:
    """True when ``encoder.tflite`` exists and was exported from the present ``encoder.keras``."""
    folder = Path(folder)
    try:
        record = json.loads((folder / LITE_RECORD_FILE).read_text())
    except (OSError, ValueError):
        return False
    source = folder / ENCODER_FILE
    return (folder / LITE_ENCODER_FILE).is_file() and source.is_file() \
        and record.get("encoder_sha256") == file_sha256(source)


def ensure_lite_encoder(folder: str | os.PathLike) -> Path:
    """``folder / encoder.tflite``, exported from ``encoder.keras`` first when missing or stale (TensorFlow)."""
    folder = Path(folder)
    if lite_encoder_is_current(folder):
        return folder / LITE_ENCODER_FILE
    source = folder / ENCODER_FILE
    if not source.is_file():
        raise EncodeError(f"no trained encoder at {source} to export")
    log.info("exporting %s to LiteRT for fast queries (once per trained encoder; imports TensorFlow)", source)
    import keras

    from iss.models import autoencoders  # noqa: F401 - registers the custom layers needed to load encoders

    return export_encoder(keras.models.load_model(source), folder)


class LiteEncoder:
    """An exported encoder run by the LiteRT interpreter (no TensorFlow).

    Parameters
    ----------
    path : path
        An ``encoder.tflite`` written by :func:`export_encoder`.

    Thread-safe: one interpreter, invoked under a lock (a single picture takes ~0.2 ms).
    """

    def __init__(self, path: str | os.PathLike):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.path = Path(path)
        # No default XNNPACK delegate: for one small picture the plain kernels are as fast, and
        # the delegate prints an INFO line on every start.
        self._interpreter = Interpreter(model_path=str(self.path), num_threads=1,
                                        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self.input_shape = tuple(int(s) for s in self._input["shape_signature"][1:])
        self.latent_dim = int(np.prod(self._output["shape_signature"][1:]))
        self._batch = None
        self._lock = threading.Lock()

    def encode(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Latents of uint8 pictures (n, h, w, c) -> float32 (n, d), as :func:`iss.models.encode.encode_images`."""
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise TypeError(f"LiteEncoder.encode expects uint8 pixels (0..255), got {images.dtype}")
        if images.ndim != 4 or tuple(images.shape[1:]) != self.input_shape:
            raise ValueError(f"the encoder takes pictures of {self.input_shape}, got an array of {images.shape}")
        out = np.empty((len(images), self.latent_dim), np.float32)
        with self._lock:
            for start in range(0, len(images), batch_size):
                chunk = images[start:start + batch_size].astype(np.float32)
                if self._batch != len(chunk):
                    self._interpreter.resize_tensor_input(self._input["index"], chunk.shape)
                    self._interpreter.allocate_tensors()
                    self._batch = len(chunk)
                self._interpreter.set_tensor(self._input["index"], chunk)
                self._interpreter.invoke()
                out[start:start + len(chunk)] = self._interpreter.get_tensor(self._output["index"]).reshape(len(chunk), -1)
        return out
