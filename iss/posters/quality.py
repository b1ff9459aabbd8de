"""Picture quality for "best of cluster": sharpness and exposure of small RGB images.

Both are computed on small images (the ingest cache's thumbnails, or a downscaled decode), so
ranking a shortlist costs microseconds per picture. Scores are only compared within one
shortlist, computed from one source, so their absolute scale does not matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from iss.data.images import decode_picture

# ITU-R BT.601 luma weights, as PIL's "L" conversion
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def luminance(images: np.ndarray) -> np.ndarray:
    """Luminance in [0, 1] of uint8 RGB images: (n, h, w, 3) -> float32 (n, h, w)."""
    return (np.asarray(images, dtype=np.float32) @ _LUMA) / 255.0


def sharpness(images: np.ndarray) -> np.ndarray:
    """Variance of the Laplacian of each image's luminance: (n, h, w, 3) uint8 -> float32 (n,).

    The 4-neighbour Laplacian responds to edges and fine detail; a blurred or flat picture
    has a small variance. Computed on the interior pixels (no padding artefacts).
    """
    lum = luminance(images)
    lap = (4 * lum[:, 1:-1, 1:-1] - lum[:, :-2, 1:-1] - lum[:, 2:, 1:-1] - lum[:, 1:-1, :-2] - lum[:, 1:-1, 2:])
    return lap.reshape(len(lap), -1).var(axis=1)


def exposure(images: np.ndarray, clip_low: float = 2 / 255, clip_high: float = 253 / 255) -> np.ndarray:
    """How well exposed each image is, in [0, 1]: (n, h, w, 3) uint8 -> float32 (n,).

    ``(1 - |mean luminance - 0.5| / 0.5) * (1 - clipped fraction)``: 1 for a mid-grey mean with
    no pixel crushed to black or blown to white, 0 for an all-black or all-white picture.
    """
    lum = luminance(images).reshape(len(images), -1)
    closeness = 1.0 - np.abs(lum.mean(axis=1) - 0.5) / 0.5
    clipped = ((lum <= clip_low) | (lum >= clip_high)).mean(axis=1)
    return (closeness * (1.0 - clipped)).astype(np.float32)


def contrast(images: np.ndarray) -> np.ndarray:
    """Standard deviation of each image's luminance, in [0, 0.5]: (n, h, w, 3) uint8 -> float32 (n,).

    Near 0 for flat pictures (a blank "live is off" screen, a uniform sky); 0.15 or more for
    pictures with visible structure.
    """
    return luminance(images).reshape(len(images), -1).std(axis=1).astype(np.float32)


def quality(images: np.ndarray) -> np.ndarray:
    """Sharpness (scaled to [0, 1] by the set's maximum) times exposure: (n, h, w, 3) -> (n,).

    Higher is better. Scaling by the maximum makes the score relative to the set being ranked,
    so it combines with exposure without a tuned constant.
    """
    sharp = sharpness(images)
    top = float(sharp.max()) if len(sharp) else 0.0
    sharp = sharp / top if top > 0 else np.zeros_like(sharp)
    return (sharp * exposure(images)).astype(np.float32)


def small_decode(path: str | Path, size: Sequence[int], fit: str = "stretch") -> np.ndarray:
    """Decode a picture straight to ``size`` = (width, height): uint8 (height, width, 3).

    The ingest's decoder (:func:`iss.data.images.decode_picture`: reduced-size JPEG decoding,
    EXIF orientation, any colour mode), so the pixels match the ingest cache's thumbnails.
    """
    return decode_picture(path, input_size=size, thumb_size=size, fit=fit).thumb
