"""The encode step: latents aligned with the cache, incremental merges, the latents file contract."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

import keras
from iss.db import schema
from iss.models import encode as encode_module
from iss.models.autoencoders import build_autoencoder
from iss.models.encode import (EncodeError, batch_size_for, encode_collection, encode_images, load_encoder,
                               load_latents)
from iss.models.training import register_model, train_model
from tests.models.conftest import fill_cache, structured_pictures


@pytest.mark.parametrize("model_type", ["simple_conv", "variational_conv"])
def test_encode_images_flattens_latents_and_uses_z_mean(model_type):
    ae = build_autoencoder(model_type, (27, 48, 3))
    x = structured_pictures(37)
    latents = encode_images(ae.encoder, x, batch_size=16)  # batches of 16, 16, 5: one trace
    assert latents.dtype == np.float32 and latents.shape == (37, ae.latent_dim)
    direct = ae.encoder(x, training=False)
    z_mean = direct[0] if isinstance(direct, list) else direct
    np.testing.assert_allclose(latents, keras.ops.convert_to_numpy(z_mean).reshape(37, -1), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(encode_images(ae.encoder, x, batch_size=16), latents)  # deterministic, also for the VAE
    # another batch size may pick other oneDNN kernels: equal up to float rounding
    np.testing.assert_allclose(encode_images(ae.encoder, x), latents, rtol=1e-5, atol=1e-6)


def test_encode_images_checks_its_input():
    ae = build_autoencoder("simple", (28, 28, 1), hidden=[16], latent_dim=4)
    with pytest.raises(ValueError, match=r"takes pictures of \(28, 28, 1\)"):
        encode_images(ae.encoder, np.zeros((2, 27, 48, 3), dtype=np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        encode_images(ae.encoder, np.zeros((2, 28, 28, 1), dtype=np.float32))
    assert encode_images(ae.encoder, np.zeros((0, 28, 28, 1), dtype=np.uint8)).shape == (0, 4)


def test_encode_collection_aligned_with_cache_and_merges_new_pictures(trained, monkeypatch):
    cfg, engine, cache = trained
    path = encode_collection(cfg, engine, "simple_conv", "enc")
    assert path == cfg.path("latents") / "simple_conv" / "enc" / "latents.npz"
    ids, latents = load_latents(cfg, "simple_conv", "enc")
    assert list(ids) == cache.ids and latents.dtype == np.float32 and latents.shape == (64, 288)
    encoder = load_encoder(cfg, "simple_conv", "enc")
    np.testing.assert_allclose(latents[10:12], encode_images(encoder, cache.get_inputs(cache.ids[10:12])),
                               rtol=1e-5, atol=1e-6)

    fill_cache(cfg, 8, start=1000, seed=5)  # new pictures arrive
    encoded_counts = []
    real = encode_module.encode_images
    monkeypatch.setattr(encode_module, "encode_images",
                        lambda enc, x, batch_size=None: encoded_counts.append(len(x)) or real(enc, x, batch_size))
    encode_collection(cfg, engine, "simple_conv", "enc", only_new=True)
    assert encoded_counts == [8]  # only the new ones
    ids2, latents2 = load_latents(cfg, "simple_conv", "enc")
    cache2 = type(cache)(cfg.path("cache"))
    assert list(ids2) == cache2.ids and len(ids2) == 72
    np.testing.assert_array_equal(latents2[:64], latents)  # old latents kept as they were
    np.testing.assert_allclose(latents2[64:], real(encoder, cache2.inputs[64:]), rtol=1e-5, atol=1e-6)

    encode_collection(cfg, engine, "simple_conv", "enc", only_new=True)  # nothing new: nothing encoded
    encode_collection(cfg, engine, "simple_conv", "enc", only_new=False)
    assert encoded_counts == [8, 72]
    with engine.connect() as conn:
        metrics = conn.execute(select(schema.models.c.metrics)).scalar_one()
    assert metrics["n_latents"] == 72 and metrics["latents_path"] == str(path)


def test_retrained_encoder_reencodes_everything(trained, monkeypatch):
    cfg, engine, cache = trained
    encode_collection(cfg, engine, "simple_conv", "enc")
    train_model(cfg, engine, "simple_conv", "enc", epochs=1, verbose=0)  # new weights, same name
    counts = []
    real = encode_module.encode_images
    monkeypatch.setattr(encode_module, "encode_images",
                        lambda enc, x, batch_size=None: counts.append(len(x)) or real(enc, x, batch_size))
    encode_collection(cfg, None, "simple_conv", "enc", only_new=True)
    assert counts == [64]


def test_missing_model_and_latents_name_the_fix(cfg):
    with pytest.raises(EncodeError, match="no trained encoder.*make training MODEL_TYPE=simple"):
        load_encoder(cfg, "simple", "nope")
    with pytest.raises(EncodeError, match="no latents.*make encode"):
        load_latents(cfg, "simple", "nope")


def test_latents_recorded_in_models_row_on_both_backends(engine, cfg, tmp_path):
    register_model(engine, "simple", "m", tmp_path, {}, {"val_loss": 0.1})
    encode_module._record_latents(engine, "simple", "m", tmp_path / "latents.npz", 12)
    with engine.connect() as conn:
        metrics = conn.execute(select(schema.models.c.metrics)).scalar_one()
    assert metrics == {"val_loss": 0.1, "n_latents": 12, "latents_path": str(tmp_path / "latents.npz")}


def test_batches_hold_about_the_same_pixels_whatever_the_picture_size():
    assert batch_size_for((27, 48, 3)) == 256  # the demo's input
    assert batch_size_for((54, 96, 3)) == 64  # the thumbnail as input: 4x the pixels, 1/4 the pictures
    assert batch_size_for((28, 28, 1)) == 512  # MNIST
    assert batch_size_for((720, 1280, 3)) == 16 and batch_size_for((4, 4, 3)) == 1024  # clipped
