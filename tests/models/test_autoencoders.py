"""The four autoencoders: shapes for any input, save/load round trips, the VAE's losses, learning."""

from __future__ import annotations

import numpy as np
import pytest

import keras
from iss.models.autoencoders import MODEL_TYPES, VAE, ModelConfigError, build_autoencoder
from tests.models.conftest import structured_pictures

CASES = [("simple", {}), ("simple_conv", {"variant": "fast"}), ("simple_conv", {"variant": "original"}),
         ("variational", {}), ("variational_conv", {"variant": "fast"}), ("variational_conv", {"variant": "original"})]


def _first(outputs):
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


@pytest.mark.parametrize("model_type,params", CASES)
@pytest.mark.parametrize("input_shape", [(27, 48, 3), (28, 28, 1)])
def test_shapes(model_type, params, input_shape):
    ae = build_autoencoder(model_type, input_shape, **params)
    x = np.random.default_rng(0).integers(0, 256, size=(5, *input_shape), dtype=np.uint8)
    outputs = ae.encoder(x)
    latent = _first(outputs)
    assert tuple(latent.shape) == (5, *ae.latent_shape)
    assert tuple(ae.decoder(latent).shape) == (5, *input_shape)
    reconstruction = keras.ops.convert_to_numpy(ae.model(x))
    assert reconstruction.shape == (5, *input_shape)
    assert reconstruction.min() >= 0.0 and reconstruction.max() <= 1.0  # sigmoid pixels
    if model_type.startswith("variational"):
        assert len(outputs) == 3 and ae.latent_shape == (16,)  # z_mean, z_log_var, z
        assert isinstance(ae.model, VAE)


def test_conv_latent_is_the_original_3x6x16():
    for variant in ("fast", "original"):
        ae = build_autoencoder("simple_conv", (27, 48, 3), variant=variant, latent_shape=[3, 6, 16])
        assert ae.latent_shape == (3, 6, 16) and ae.latent_dim == 288


def test_original_variant_is_the_original_network():
    ae = build_autoencoder("simple_conv", (27, 48, 3), variant="original")
    convs = [layer for layer in ae.encoder.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [64, 32, 16]
    assert all(c.strides == (1, 1) for c in convs)  # full-resolution convolutions, max pooling
    assert isinstance(ae.decoder.get_layer("dec_pixels"), keras.layers.Dense)
    fast = build_autoencoder("simple_conv", (27, 48, 3), variant="fast")
    assert all(c.strides == (2, 2) for c in fast.encoder.layers if isinstance(c, keras.layers.Conv2D))
    assert fast.model.count_params() < ae.model.count_params() / 100


def test_bad_parameters_name_the_fix():
    with pytest.raises(ModelConfigError, match="unknown model type 'dense'.*simple_conv"):
        build_autoencoder("dense")
    with pytest.raises(ModelConfigError, match="unknown parameter.*latent_dims.*accepted"):
        build_autoencoder("simple", latent_dims=3)
    with pytest.raises(ModelConfigError, match="variant.*fast, original"):
        build_autoencoder("simple_conv", variant="quick")
    with pytest.raises(ModelConfigError, match="max pooling"):
        build_autoencoder("simple_conv", variant="original", latent_shape=[4, 6, 16])
    with pytest.raises(ModelConfigError, match="too small"):
        build_autoencoder("simple_conv", (4, 4, 1))


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_save_load_round_trip_gives_identical_outputs(model_type, tmp_path):
    ae = build_autoencoder(model_type, (27, 48, 3))
    ae.compile(1e-3)
    x = structured_pictures(8)
    ae.model.fit(x, keras.ops.cast(x, "float32") / 255.0, epochs=1, batch_size=8, verbose=0)  # non-initial weights
    ae.encoder.save(tmp_path / "encoder.keras")
    ae.decoder.save(tmp_path / "decoder.keras")
    encoder = keras.models.load_model(tmp_path / "encoder.keras")
    decoder = keras.models.load_model(tmp_path / "decoder.keras")
    before, after = _first(ae.encoder(x, training=False)), _first(encoder(x, training=False))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(before), keras.ops.convert_to_numpy(after))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ae.decoder(before)),
                                  keras.ops.convert_to_numpy(decoder(after)))


def test_vae_kl_term_present_and_finite():
    ae = build_autoencoder("variational_conv", (27, 48, 3), latent_dim=8)
    ae.compile(1e-3)
    x = structured_pictures(32)
    target = x.astype("float32") / 255.0
    history = ae.model.fit(x, target, epochs=2, batch_size=16, verbose=0).history
    assert {"loss", "reconstruction_loss", "kl_loss", "mse"} <= set(history)
    kl, rec, total = history["kl_loss"][-1], history["reconstruction_loss"][-1], history["loss"][-1]
    assert np.isfinite(kl) and kl > 0.0
    assert total == pytest.approx(rec + kl, rel=1e-4)
    scores = ae.model.evaluate(x, target, verbose=0, return_dict=True)  # test_step reports them too
    assert np.isfinite(scores["kl_loss"]) and scores["kl_loss"] > 0.0


def test_vae_kl_weight_zero_drops_the_term():
    ae = build_autoencoder("variational", (28, 28, 1), hidden=[32], latent_dim=4, kl_weight=0.0)
    ae.compile(1e-3)
    x = structured_pictures(16, shape=(28, 28, 1))
    logs = ae.model.fit(x, x.astype("float32") / 255.0, epochs=1, batch_size=16, verbose=0).history
    assert logs["loss"][0] == pytest.approx(logs["reconstruction_loss"][0], rel=1e-5)
    assert logs["kl_loss"][0] > 0.0


@pytest.mark.parametrize("model_type", ["simple_conv", "simple"])
def test_loss_decreases_on_structured_pictures(model_type):
    keras.utils.set_random_seed(0)
    ae = build_autoencoder(model_type, (27, 48, 3)).compile(2e-3)
    x = structured_pictures(128)
    losses = ae.model.fit(x, x.astype("float32") / 255.0, epochs=6, batch_size=32, verbose=0).history["loss"]
    assert losses[-1] < 0.7 * losses[0], losses


def test_mixed_precision_keeps_float32_outputs():
    previous = keras.mixed_precision.dtype_policy().name
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        ae = build_autoencoder("simple_conv", (27, 48, 3))
        vae = build_autoencoder("variational_conv", (27, 48, 3))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert ae.encoder.get_layer("enc_conv_1").compute_dtype == "float16"
    assert ae.decoder.outputs[0].dtype == "float32"
    assert all(o.dtype == "float32" for o in vae.encoder.outputs)
