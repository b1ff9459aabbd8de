"""Upscalers: how a picture smaller than its slot is enlarged (Lanczos by default).

An upscaler is any callable ``upscaler(image, size) -> image`` that takes a PIL RGB image
(already centre-cropped to the slot's aspect ratio) and returns an RGB image of exactly
``size = (width, height)``. It is only called when the slot is larger than the crop; shrinking
always uses Lanczos.

Pick one with ``posters.upscaler`` in the config: a registered name (``lanczos``,
``lanczos_sharpen``) or an import path ``package.module:callable``. To plug a super-resolution
model, write a function that runs the model and finishes with Lanczos to the exact size::

    # mypkg/sr.py
    import numpy as np
    from PIL import Image
    from iss.posters.upscale import lanczos, register_upscaler

    _model = None

    def esrgan_x4(image, size):
        global _model
        if _model is None:                                  # load once, on first use
            import keras
            _model = keras.saving.load_model("models/sr/esrgan_x4.keras")
        x = np.asarray(image, dtype=np.float32)[None] / 255.0   # (1, h, w, 3)
        y = _model.predict(x, verbose=0)[0]                  # (4h, 4w, 3)
        big = Image.fromarray(np.clip(y * 255 + 0.5, 0, 255).astype(np.uint8))
        return lanczos(big, size)                           # exact slot size, never stretched

    register_upscaler("esrgan_x4", esrgan_x4)               # or set posters.upscaler: "mypkg.sr:esrgan_x4"

The upscaler's name is stored with each poster, so ``--regenerate`` uses the same one (a model
must be deterministic on CPU for the regenerated file to be byte-identical).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol

from PIL import Image, ImageFilter

from iss.posters.templates import PosterError


class Upscaler(Protocol):
    """``upscaler(image, size) -> image``: RGB PIL image in, RGB PIL image of exactly ``size`` out."""

    def __call__(self, image: Image.Image, size: tuple[int, int]) -> Image.Image: ...


def lanczos(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Lanczos (windowed sinc, a=3) resampling: sharp, little ringing; PIL's best general filter."""
    return image.resize(tuple(size), Image.Resampling.LANCZOS)


def lanczos_sharpen(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Lanczos, then an unsharp mask scaled to the enlargement, to restore edge contrast that an
    upscale softens."""
    big = lanczos(image, size)
    factor = size[0] / max(1, image.width)
    return big.filter(ImageFilter.UnsharpMask(radius=max(1.0, factor), percent=60, threshold=2))


_REGISTRY: dict[str, Upscaler] = {"lanczos": lanczos, "lanczos_sharpen": lanczos_sharpen}


def register_upscaler(name: str, upscaler: Upscaler) -> None:
    """Make ``upscaler`` available as ``posters.upscaler: <name>`` (replaces a previous one)."""
    if not callable(upscaler):
        raise TypeError(f"upscaler {name!r} should be callable(image, size) -> image, got {upscaler!r}")
    _REGISTRY[name] = upscaler


def available_upscalers() -> list[str]:
    """Registered names."""
    return sorted(_REGISTRY)


def get_upscaler(name: str) -> Upscaler:
    """The upscaler registered as ``name``, or imported from ``package.module:callable``.

    Raises
    ------
    PosterError
        Unknown name, or an import path that does not resolve to a callable.
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            found: Callable = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise PosterError(f"posters.upscaler {name!r}: cannot import {attr!r} from {module_name!r} ({exc})") \
                from exc
        if not callable(found):
            raise PosterError(f"posters.upscaler {name!r} is not callable")
        return found
    raise PosterError(f"posters.upscaler {name!r} is not a registered upscaler ({', '.join(available_upscalers())}) "
                      f"nor an import path 'package.module:callable'")
