"""The four autoencoders, built from config: ``simple``, ``simple_conv``, ``variational``, ``variational_conv``.

Every model takes pixels as they are stored in the ingest cache: ``uint8`` values 0..255 of
shape ``(h, w, c)`` (float 0..255 works too). The encoder starts with a ``Rescaling(1/255)``
layer, so the saved ``encoder.keras`` is self-contained: whoever encodes pictures (the encode
step, the similarity search) feeds raw pixels and never re-implements the scaling. The decoder
ends with a sigmoid and returns pixels in [0, 1]; the training targets are the inputs scaled to
[0, 1] (see :func:`iss.models.dataset.make_dataset`).

Encoder and decoder are functional Keras models. The training model of the deterministic
autoencoders is the functional ``decoder(encoder(x))`` compiled with an MSE loss; the two
variational models train through :class:`VAE`, the one subclass (its ``train_step`` adds the
KL term), keras-io style.

``simple_conv`` comes in two variants (``variant`` parameter):

``original``
    The original project's network, layer for layer: full-resolution 3x3 convolutions with
    64/32/16 filters, batch normalisation and 2x2 max pooling down to a ``(h//8, w//8, 16)``
    latent, a mirror decoder with up-sampling, then a dense layer from the 24x48x3 map to
    every output pixel (13.5 M weights at 27x48x3). 3-6 ms per picture per epoch on this
    2-core CPU (about 3 ms of CPU time), most of it in the full-resolution layers.
``fast`` (default)
    No full-resolution layer at all: the input is resized to ``2**3`` times the latent grid
    (27x48 -> 24x48) and goes through three stride-2 3x3 convolutions (32, 64, 16 filters);
    the decoder mirrors them with stride-2 transposed convolutions (64, 32, then straight to
    the 3 colour channels), resizes back to the input size and applies the sigmoid. The
    latent keeps the original's 3x6x16 shape, for any input size. 57 k weights; about 10x
    less CPU per epoch than ``original`` with a lower validation error and a higher demo ARI
    (``benchmarks/training.py``). XLA compilation was measured slower on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

import keras
from keras import layers, ops

MODEL_TYPES = ("simple", "simple_conv", "variational", "variational_conv")
CONV_VARIANTS = ("fast", "original")

# Accepted build parameters per model type and their defaults (config: ``models.<type>``).
DEFAULT_PARAMS: dict[str, dict] = {
    "simple": {"hidden": [256], "latent_dim": 32, "activation": "relu"},
    "simple_conv": {"variant": "fast", "latent_shape": None, "filters": None},
    "variational": {"hidden": [256], "latent_dim": 16, "activation": "relu", "kl_weight": 1.0, "seed": 0},
    "variational_conv": {"variant": "fast", "latent_dim": 16, "filters": None, "latent_channels": 16,
                         "kl_weight": 1.0, "seed": 0},
}

# Encoder filters before the latent convolution; one stride-2 stage each, plus the latent stage.
DEFAULT_FILTERS = {"original": (64, 32), "fast": (32, 64)}
LATENT_CHANNELS = 16


class ModelConfigError(ValueError):
    """A model type or build parameter is not valid."""


@dataclass
class Autoencoder:
    """A built autoencoder: functional encoder and decoder plus the model that trains them.

    Attributes
    ----------
    model_type : str
        One of :data:`MODEL_TYPES`.
    input_shape : tuple of int
        ``(h, w, c)`` of an input picture.
    params : dict
        The build parameters (defaults filled in), as recorded in ``record.json``.
    encoder : keras.Model
        uint8/float pixels ``(n, h, w, c)`` -> latent. Deterministic models output one tensor
        (``(n, d)`` or ``(n, lh, lw, lc)``); VAEs output ``[z_mean, z_log_var, z]``, each ``(n, d)``.
    decoder : keras.Model
        Latent -> pixels in [0, 1], ``(n, h, w, c)``.
    model : keras.Model
        The training model: functional ``decoder(encoder(x))`` or a :class:`VAE`.
    """

    model_type: str
    input_shape: tuple[int, int, int]
    params: dict
    encoder: keras.Model
    decoder: keras.Model
    model: keras.Model
    variational: bool = field(default=False)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """Shape of one latent (``z_mean`` for VAEs), without the batch axis."""
        return tuple(int(s) for s in self.decoder.inputs[0].shape[1:])

    @property
    def latent_dim(self) -> int:
        """Size of a flattened latent, the ``d`` of the encode step's ``(n, d)`` matrix."""
        return int(np.prod(self.latent_shape))

    def compile(self, learning_rate: float = 1e-3, jit_compile: bool | str = False) -> "Autoencoder":
        """Compile the training model with Adam (and the MSE loss for deterministic models)."""
        compile_model(self.model, learning_rate=learning_rate, jit_compile=jit_compile)
        return self


def compile_model(model: keras.Model, learning_rate: float = 1e-3, jit_compile: bool | str = False) -> None:
    """Adam + MSE for an autoencoder, Adam alone for a :class:`VAE` (its losses are built in)."""
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    if isinstance(model, VAE):
        model.compile(optimizer=optimizer, jit_compile=jit_compile)
    else:
        model.compile(optimizer=optimizer, loss="mse", jit_compile=jit_compile)


# --------------------------------------------------------------------------------------------
# Layers and the VAE training model
# --------------------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="iss")
class Sampling(layers.Layer):
    """``z = z_mean + exp(z_log_var / 2) * eps`` with ``eps ~ N(0, 1)`` (the reparameterisation trick)."""

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        epsilon = keras.random.normal(ops.shape(z_mean), dtype=z_mean.dtype, seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="iss")
class VAE(keras.Model):
    """Variational autoencoder trainer around a functional encoder and decoder.

    Loss per picture: ``reconstruction_loss`` = binary cross-entropy summed over the pixels
    (mean over channels), ``kl_loss`` = KL(q(z|x) || N(0, I)) summed over the latent
    dimensions; ``loss = reconstruction_loss + kl_weight * kl_loss``, averaged over the batch.
    ``mse`` (mean squared error per pixel) is tracked too, to compare with the plain autoencoders.

    Parameters
    ----------
    encoder : keras.Model
        Pixels -> ``[z_mean, z_log_var, z]``.
    decoder : keras.Model
        ``z`` -> pixels in [0, 1].
    kl_weight : float, default=1.0
    """

    def __init__(self, encoder: keras.Model, decoder: keras.Model, kl_weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.kl_weight = float(kl_weight)
        self.total_loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")
        self.mse_tracker = keras.metrics.Mean(name="mse")

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker, self.mse_tracker]

    def call(self, inputs, training=False):
        """Reconstruction: from a sampled ``z`` while training, from ``z_mean`` otherwise."""
        z_mean, _, z = self.encoder(inputs, training=training)
        return self.decoder(z if training else z_mean, training=training)

    def _vae_losses(self, target, reconstruction, z_mean, z_log_var):
        target = ops.cast(target, "float32")
        reconstruction = ops.cast(reconstruction, "float32")
        z_mean, z_log_var = ops.cast(z_mean, "float32"), ops.cast(z_log_var, "float32")
        reconstruction_loss = ops.mean(ops.sum(
            keras.losses.binary_crossentropy(target, reconstruction), axis=(1, 2)))
        kl = -0.5 * (1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
        kl_loss = ops.mean(ops.sum(kl, axis=1))
        mse = ops.mean(ops.square(target - reconstruction))
        return reconstruction_loss, kl_loss, mse

    def _update_trackers(self, total, reconstruction_loss, kl_loss, mse):
        self.total_loss_tracker.update_state(total)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        self.mse_tracker.update_state(mse)
        return {m.name: m.result() for m in self.metrics}

    @staticmethod
    def _unpack(data):
        if isinstance(data, (tuple, list)):
            return data[0], data[1]
        return data, ops.cast(data, "float32") / 255.0

    def train_step(self, data):
        import tensorflow as tf  # the VAE's custom step uses the TensorFlow backend's GradientTape

        x, target = self._unpack(data)
        with tf.GradientTape() as tape:
            z_mean, z_log_var, z = self.encoder(x, training=True)
            reconstruction = self.decoder(z, training=True)
            reconstruction_loss, kl_loss, mse = self._vae_losses(target, reconstruction, z_mean, z_log_var)
            total = reconstruction_loss + self.kl_weight * kl_loss
            scaled = self.optimizer.scale_loss(total)  # loss scaling under mixed_float16, else identity
        gradients = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        return self._update_trackers(total, reconstruction_loss, kl_loss, mse)

    def test_step(self, data):
        x, target = self._unpack(data)
        z_mean, z_log_var, _ = self.encoder(x, training=False)
        reconstruction = self.decoder(z_mean, training=False)
        reconstruction_loss, kl_loss, mse = self._vae_losses(target, reconstruction, z_mean, z_log_var)
        return self._update_trackers(reconstruction_loss + self.kl_weight * kl_loss, reconstruction_loss, kl_loss, mse)

    def get_config(self):
        return {"name": self.name, "kl_weight": self.kl_weight,
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "decoder": keras.saving.serialize_keras_object(self.decoder)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        encoder = keras.saving.deserialize_keras_object(config.pop("encoder"))
        decoder = keras.saving.deserialize_keras_object(config.pop("decoder"))
        return cls(encoder, decoder, **config)


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------

def _output_dtype() -> str:
    """The output layers stay float32 under mixed precision (numerically stable sigmoid / losses)."""
    return "float32"


def _pixels_in(input_shape: tuple[int, int, int]):
    """Input of raw pixels 0..255 and its [0, 1] rescaled tensor."""
    pixels = keras.Input(shape=input_shape, name="pixels")
    return pixels, layers.Rescaling(1.0 / 255.0, name="rescale")(pixels)


def _dense_stack(x, units: Sequence[int], activation: str, prefix: str):
    for i, n in enumerate(units, start=1):
        x = layers.Dense(int(n), activation=activation, name=f"{prefix}_dense_{i}")(x)
    return x


def _conv_stage_original(x, filters: int, name: str):
    """Original project: full-resolution 3x3 conv, batch norm, ReLU (pooling/up-sampling added by caller)."""
    x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _latent_grid(input_shape, latent_shape, n_stages: int) -> tuple[int, int, int]:
    """Latent ``(lh, lw, lc)``: given, or ``(h // 2**n, w // 2**n, 16)`` as max pooling would give."""
    h, w, _ = input_shape
    if latent_shape is None:
        grid = (h // 2 ** n_stages, w // 2 ** n_stages, LATENT_CHANNELS)
    else:
        if len(latent_shape) != 3:
            raise ModelConfigError(f"latent_shape must be [height, width, channels], got {list(latent_shape)}")
        grid = tuple(int(v) for v in latent_shape)
    if min(grid) < 1:
        raise ModelConfigError(
            f"input {tuple(input_shape)} is too small for {n_stages} halvings (latent {grid}); "
            f"use at least {2 ** n_stages}x{2 ** n_stages} pixels or fewer filters stages")
    return grid


def _conv_encoder_body(x, input_shape, variant: str, filters: Sequence[int], latent_shape, prefix="enc"):
    """Convolutional feature extractor down to the latent grid ``(lh, lw, lc)``; returns (tensor, grid)."""
    n_stages = len(filters) + 1
    lh, lw, lc = _latent_grid(input_shape, latent_shape, n_stages)
    if variant == "original":
        expected = (input_shape[0] // 2 ** n_stages, input_shape[1] // 2 ** n_stages)
        if (lh, lw) != expected:
            raise ModelConfigError(
                f"the original variant's max pooling turns a {input_shape[0]}x{input_shape[1]} input into a "
                f"{expected[0]}x{expected[1]} latent, but latent_shape asks {lh}x{lw}; drop latent_shape "
                f"or use variant: fast")
        for i, f in enumerate([*filters, lc], start=1):
            x = _conv_stage_original(x, int(f), f"{prefix}_{i}")
            x = layers.MaxPooling2D(2, name=f"{prefix}_{i}_pool")(x)
        return x, (lh, lw, lc)
    # fast: resize to exactly 2**n times the latent grid, then only stride-2 convolutions
    work = (lh * 2 ** n_stages, lw * 2 ** n_stages)
    if work != tuple(input_shape[:2]):
        x = layers.Resizing(*work, interpolation="bilinear", name=f"{prefix}_resize")(x)
    for i, f in enumerate(filters, start=1):
        x = layers.Conv2D(int(f), 3, strides=2, padding="same", activation="relu", name=f"{prefix}_conv_{i}")(x)
    x = layers.Conv2D(lc, 3, strides=2, padding="same", name=f"{prefix}_latent")(x)
    return x, (lh, lw, lc)


def _conv_decoder_body(x, output_shape, variant: str, filters: Sequence[int], grid, prefix="dec"):
    """Mirror of :func:`_conv_encoder_body`: latent grid -> pixels in [0, 1] of ``output_shape``."""
    h, w, c = output_shape
    lh, lw, lc = grid
    n_stages = len(filters) + 1
    if variant == "original":
        for i, f in enumerate([lc, *reversed(filters)], start=1):
            x = _conv_stage_original(x, int(f), f"{prefix}_{i}")
            x = layers.UpSampling2D(2, name=f"{prefix}_{i}_up")(x)
        x = layers.Conv2D(c, 3, padding="same", name=f"{prefix}_{n_stages + 1}_conv")(x)
        x = layers.BatchNormalization(name=f"{prefix}_{n_stages + 1}_bn")(x)
        x = layers.Flatten(name=f"{prefix}_flatten")(x)
        x = layers.Dense(h * w * c, activation="sigmoid", dtype=_output_dtype(), name=f"{prefix}_pixels")(x)
        return layers.Reshape((h, w, c), name=f"{prefix}_reshape")(x)
    # fast: stride-2 transposed convolutions back to 2**n times the grid, the last one straight to
    # the picture's channels (a full-resolution layer with more channels cost 40% of the time for
    # no better reconstruction), then resize to the input size and squash to [0, 1]
    for i, f in enumerate(reversed(filters), start=1):
        x = layers.Conv2DTranspose(int(f), 3, strides=2, padding="same", activation="relu",
                                   name=f"{prefix}_deconv_{i}")(x)
    x = layers.Conv2DTranspose(c, 3, strides=2, padding="same", name=f"{prefix}_deconv_{n_stages}")(x)
    if (lh * 2 ** n_stages, lw * 2 ** n_stages) != (h, w):
        x = layers.Resizing(h, w, interpolation="bilinear", name=f"{prefix}_resize")(x)
    return layers.Activation("sigmoid", dtype=_output_dtype(), name=f"{prefix}_pixels")(x)


# --------------------------------------------------------------------------------------------
# The four models
# --------------------------------------------------------------------------------------------

def _simple(input_shape, hidden, latent_dim, activation):
    pixels, x = _pixels_in(input_shape)
    x = layers.Flatten(name="enc_flatten")(x)
    x = _dense_stack(x, hidden, activation, "enc")
    latent = layers.Dense(int(latent_dim), name="enc_latent", dtype=_output_dtype())(x)  # linear embedding
    encoder = keras.Model(pixels, latent, name="encoder")

    latent_in = keras.Input(shape=(int(latent_dim),), name="latent")
    y = _dense_stack(latent_in, list(reversed(hidden)), activation, "dec")
    y = layers.Dense(int(np.prod(input_shape)), activation="sigmoid", dtype=_output_dtype(), name="dec_pixels")(y)
    y = layers.Reshape(input_shape, name="dec_reshape")(y)
    decoder = keras.Model(latent_in, y, name="decoder")
    return encoder, decoder


def _simple_conv(input_shape, variant, latent_shape, filters):
    pixels, x = _pixels_in(input_shape)
    latent, grid = _conv_encoder_body(x, input_shape, variant, filters, latent_shape)
    if variant == "fast":
        latent = layers.Activation("linear", dtype=_output_dtype(), name="enc_latent_out")(latent)
    encoder = keras.Model(pixels, latent, name="encoder")
    latent_in = keras.Input(shape=grid, name="latent")
    decoder = keras.Model(latent_in, _conv_decoder_body(latent_in, input_shape, variant, filters, grid),
                          name="decoder")
    return encoder, decoder


def _variational_head(x, latent_dim, seed):
    z_mean = layers.Dense(int(latent_dim), name="z_mean", dtype=_output_dtype())(x)
    z_log_var = layers.Dense(int(latent_dim), name="z_log_var", dtype=_output_dtype())(x)
    z = Sampling(seed=seed, name="z", dtype=_output_dtype())([z_mean, z_log_var])
    return [z_mean, z_log_var, z]


def _variational(input_shape, hidden, latent_dim, activation, seed):
    pixels, x = _pixels_in(input_shape)
    x = layers.Flatten(name="enc_flatten")(x)
    x = _dense_stack(x, hidden, activation, "enc")
    encoder = keras.Model(pixels, _variational_head(x, latent_dim, seed), name="encoder")

    latent_in = keras.Input(shape=(int(latent_dim),), name="latent")
    y = _dense_stack(latent_in, list(reversed(hidden)), activation, "dec")
    y = layers.Dense(int(np.prod(input_shape)), activation="sigmoid", dtype=_output_dtype(), name="dec_pixels")(y)
    decoder = keras.Model(latent_in, layers.Reshape(input_shape, name="dec_reshape")(y), name="decoder")
    return encoder, decoder


def _variational_conv(input_shape, variant, latent_dim, filters, latent_channels, seed):
    pixels, x = _pixels_in(input_shape)
    features, grid = _conv_encoder_body(x, input_shape, variant, filters, None if variant == "original" else
                                        (*_latent_grid(input_shape, None, len(filters) + 1)[:2], latent_channels))
    if variant == "fast":
        features = layers.Activation("relu", name="enc_latent_relu")(features)
    x = layers.Flatten(name="enc_flatten")(features)
    encoder = keras.Model(pixels, _variational_head(x, latent_dim, seed), name="encoder")

    latent_in = keras.Input(shape=(int(latent_dim),), name="latent")
    y = layers.Dense(int(np.prod(grid)), activation="relu", name="dec_dense")(latent_in)
    y = layers.Reshape(grid, name="dec_grid")(y)
    decoder = keras.Model(latent_in, _conv_decoder_body(y, input_shape, variant, filters, grid), name="decoder")
    return encoder, decoder


def build_autoencoder(model_type: str, input_shape: Sequence[int] = (27, 48, 3), **params) -> Autoencoder:
    """Build one of the four autoencoders for pictures of any ``(h, w, c)``.

    Parameters
    ----------
    model_type : {"simple", "simple_conv", "variational", "variational_conv"}
    input_shape : (int, int, int), default=(27, 48, 3)
        ``(height, width, channels)`` of the pictures, e.g. ``(28, 28, 1)`` for MNIST. The
        decoder's output has exactly this shape.
    **params
        The ``models.<model_type>`` config section:

        - simple: ``hidden`` (list of int, default [256]), ``latent_dim`` (int, default 32),
          ``activation`` (default "relu"). ``hidden=[500, 500, 2000], latent_dim=10`` is the
          N2D paper's autoencoder.
        - simple_conv: ``variant`` ("fast" | "original", default "fast"), ``latent_shape``
          ([lh, lw, lc], default ``[h // 8, w // 8, 16]``, i.e. [3, 6, 16] for 27x48),
          ``filters`` (encoder filters before the latent conv, default 32,64 fast / 64,32 original).
        - variational: ``hidden``, ``latent_dim`` (default 16), ``activation``, ``kl_weight``
          (default 1.0), ``seed`` (sampling noise, default 0).
        - variational_conv: ``variant``, ``latent_dim`` (default 16), ``filters``,
          ``latent_channels`` (default 16), ``kl_weight``, ``seed``.

    Returns
    -------
    Autoencoder
        Not compiled; call ``.compile(learning_rate)`` before training.

    Raises
    ------
    ModelConfigError
        Unknown model type, unknown parameter or impossible shape, naming the accepted values.
    """
    if model_type not in DEFAULT_PARAMS:
        raise ModelConfigError(f"unknown model type {model_type!r}; expected one of {', '.join(MODEL_TYPES)}")
    unknown = sorted(set(params) - set(DEFAULT_PARAMS[model_type]))
    if unknown:
        raise ModelConfigError(
            f"models.{model_type}: unknown parameter(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(sorted(DEFAULT_PARAMS[model_type]))}")
    p = {**DEFAULT_PARAMS[model_type], **{k: v for k, v in params.items()}}
    input_shape = tuple(int(v) for v in input_shape)
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ModelConfigError(f"input_shape must be (height, width, channels), got {input_shape}")
    if "variant" in p:
        if p["variant"] not in CONV_VARIANTS:
            raise ModelConfigError(f"models.{model_type}.variant: expected one of {', '.join(CONV_VARIANTS)}, "
                                   f"got {p['variant']!r}")
        p["filters"] = [int(f) for f in (p["filters"] or DEFAULT_FILTERS[p["variant"]])]
    if "hidden" in p:
        p["hidden"] = [int(h) for h in p["hidden"]]

    if model_type == "simple":
        encoder, decoder = _simple(input_shape, p["hidden"], p["latent_dim"], p["activation"])
    elif model_type == "simple_conv":
        encoder, decoder = _simple_conv(input_shape, p["variant"], p["latent_shape"], p["filters"])
        p["latent_shape"] = [int(s) for s in decoder.inputs[0].shape[1:]]
    elif model_type == "variational":
        encoder, decoder = _variational(input_shape, p["hidden"], p["latent_dim"], p["activation"], p["seed"])
    else:
        encoder, decoder = _variational_conv(input_shape, p["variant"], p["latent_dim"], p["filters"],
                                             int(p["latent_channels"]), p["seed"])
    return assemble(model_type, input_shape, p, encoder, decoder)


def assemble(model_type: str, input_shape, params: dict, encoder: keras.Model, decoder: keras.Model) -> Autoencoder:
    """Wrap an encoder and decoder (built or loaded) with their training model."""
    variational = model_type.startswith("variational")
    if variational:
        model = VAE(encoder, decoder, kl_weight=params.get("kl_weight", 1.0), name="vae")
        model.build((None, *input_shape))
    else:
        pixels = keras.Input(shape=tuple(input_shape), name="pixels")
        model = keras.Model(pixels, decoder(encoder(pixels)), name="autoencoder")
    return Autoencoder(model_type, tuple(input_shape), dict(params), encoder, decoder, model, variational)


def from_training_model(model_type: str, params: dict, model: keras.Model) -> Autoencoder:
    """An :class:`Autoencoder` around a training model loaded from a checkpoint (optimizer state kept)."""
    if isinstance(model, VAE):
        encoder, decoder = model.encoder, model.decoder
    else:
        encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    input_shape = tuple(int(s) for s in encoder.inputs[0].shape[1:])
    return Autoencoder(model_type, input_shape, dict(params), encoder, decoder, model, isinstance(model, VAE))
