"""The LiteRT export of the encoder: saved with every trained model, the same latents as the Keras
encoder, refreshed when the encoder changes, and run without TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from iss.models.autoencoders import build_autoencoder
from iss.models.encode import encode_images
from iss.models.lite import (LITE_ENCODER_FILE, LiteEncoder, ensure_lite_encoder, export_encoder,
                             lite_encoder_is_current)
from iss.models.training import save_model
from tests.models.conftest import structured_pictures


@pytest.mark.parametrize("model_type, params", [("simple_conv", {}), ("simple_conv", {"variant": "original"}),
                                                ("simple", {}), ("variational_conv", {})])
def test_exported_encoder_gives_the_keras_latents(tmp_path, model_type, params):
    ae = build_autoencoder(model_type, (27, 48, 3), **params)
    save_model(ae, tmp_path, {"model_type": model_type})  # training saves the export beside encoder.keras
    assert (tmp_path / LITE_ENCODER_FILE).is_file() and lite_encoder_is_current(tmp_path)
    x = structured_pictures(21)
    lite = LiteEncoder(tmp_path / LITE_ENCODER_FILE)
    assert lite.input_shape == (27, 48, 3) and lite.latent_dim == ae.latent_dim
    latents = lite.encode(x, batch_size=8)  # batches of 8, 8, 5 (z_mean for the VAE)
    np.testing.assert_allclose(latents, encode_images(ae.encoder, x), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(lite.encode(x[:1]), lite.encode(x[:1]))


def test_a_retrained_encoder_is_exported_again(tmp_path):
    first = build_autoencoder("simple_conv", (27, 48, 3))
    save_model(first, tmp_path, {})
    second = build_autoencoder("simple_conv", (27, 48, 3))  # other random weights: another encoder.keras
    second.encoder.save(tmp_path / "encoder.keras")
    assert not lite_encoder_is_current(tmp_path)
    path = ensure_lite_encoder(tmp_path)
    assert lite_encoder_is_current(tmp_path)
    x = structured_pictures(4)
    np.testing.assert_allclose(LiteEncoder(path).encode(x), encode_images(second.encoder, x), rtol=1e-4, atol=1e-5)


def test_bad_input_is_a_clear_error(tmp_path):
    export_encoder(build_autoencoder("simple_conv", (27, 48, 3)).encoder, tmp_path)
    lite = LiteEncoder(tmp_path / LITE_ENCODER_FILE)
    with pytest.raises(TypeError, match="uint8"):
        lite.encode(np.zeros((1, 27, 48, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(27, 48, 3\)"):
        lite.encode(np.zeros((1, 48, 27, 3), np.uint8))


def test_the_runtime_does_not_import_tensorflow(tmp_path):
    export_encoder(build_autoencoder("simple_conv", (27, 48, 3)).encoder, tmp_path)
    script = ("import json, sys, numpy as np\n"
              "from iss.models.lite import LiteEncoder\n"
              f"latents = LiteEncoder({str(tmp_path / LITE_ENCODER_FILE)!r}).encode(np.zeros((2, 27, 48, 3), np.uint8))\n"
              "print(json.dumps({'shape': latents.shape, 'tensorflow': 'tensorflow' in sys.modules}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"shape": [2, 288], "tensorflow": False}


def test_the_keras_fallback_encodes_alike(tmp_path):
    """Without ai-edge-litert the search encodes with TensorFlow, through the same interface."""
    from iss.search.build import KerasEncoder

    ae = build_autoencoder("simple_conv", (27, 48, 3))
    export_encoder(ae.encoder, tmp_path)
    lite, keras_encoder = LiteEncoder(tmp_path / LITE_ENCODER_FILE), KerasEncoder(ae.encoder)
    assert keras_encoder.input_shape == lite.input_shape == (27, 48, 3)
    x = structured_pictures(5)
    np.testing.assert_allclose(keras_encoder.encode(x), lite.encode(x), rtol=1e-4, atol=1e-5)
