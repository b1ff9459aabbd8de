"""How much a collection of frames looks like another: colour and gradient histograms compared by
nearest neighbour.

Why these statistics. What tells an ISS HDEV frame from a generated one, or from a holiday
photograph, at a glance is its palette (deep violet-blue ocean, white clouds, black space, the
camera's purple cast) and its texture (fine cloud fields and JPEG noise at full resolution, smooth
limbs and flat slates at a coarse one), and where light and dark lie (a fixed camera: black space
above a bright limb, or Earth filling the frame). So a frame is summarised, at the 160x90 size
ingest decodes first, by three histograms, each a probability vector compared by the Hellinger
distance (the Euclidean distance of square roots, bounded by sqrt(2), insensitive to empty bins),
and a coarse luminance layout:

- ``colour``: the joint RGB histogram, 4 levels per channel (64 bins);
- ``fine``: the luminance gradient magnitudes at 160x90, 10 log-spaced bins (texture, sharpness,
  noise);
- ``coarse``: the same at 40x22 (a 4x4 box average): the large structures (limb, cloud decks,
  glare);
- ``layout``: the mean luminance of a 3x4 grid of the frame, times ``LAYOUT_WEIGHT`` (0.5, so
  that a dark-over-bright against a uniform frame weighs about as much as a histogram block).

The distance of two frames is the Euclidean distance of these vectors: the root of the sum of
the blocks' squared distances. Without the layout, china.jpg (sky, trees, a temple) comes within
the demo's own spread on palette and texture alone; with it, it is twice as far as the threshold.

A frame is *like a collection* when its nearest neighbour in the collection is no farther than the
collection's own ``percentile`` (99th by default) leave-one-out nearest-neighbour distance: as
close as the collection's frames are to each other.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from iss.data.images import decode_picture

SIZE = (160, 90)
COLOUR_LEVELS = 4
GRADIENT_BINS = np.concatenate([[0.0], np.geomspace(0.004, 0.5, 9), [np.inf]])  # 10 bins, luminance in [0, 1]
LAYOUT_GRID = (3, 4)  # rows x columns of the luminance layout
LAYOUT_WEIGHT = 0.5
BLOCKS = ("colour", "fine", "coarse", "layout")


def frame_statistics(pixels: np.ndarray) -> np.ndarray:
    """The square-rooted colour and gradient histograms of one frame.

    Parameters
    ----------
    pixels : uint8 array, shape (90, 160, 3)
        The frame at ``SIZE`` (see :func:`statistics_of_files`).

    Returns
    -------
    ndarray of float, shape (96,)
        ``sqrt`` of the 64 colour bins, then of the 10 fine and 10 coarse gradient bins, then the
        12 layout cells times ``LAYOUT_WEIGHT``.
    """
    pixels = np.asarray(pixels)
    if pixels.shape != (SIZE[1], SIZE[0], 3) or pixels.dtype != np.uint8:
        raise ValueError(f"expected a uint8 frame of shape {(SIZE[1], SIZE[0], 3)}, got {pixels.dtype} "
                         f"{pixels.shape}")
    levels = (pixels.astype(np.int64) * COLOUR_LEVELS) // 256
    codes = (levels[..., 0] * COLOUR_LEVELS + levels[..., 1]) * COLOUR_LEVELS + levels[..., 2]
    colour = np.bincount(codes.ravel(), minlength=COLOUR_LEVELS ** 3) / codes.size
    luminance = pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0
    coarse = luminance[:88].reshape(22, 4, 40, 4).mean(axis=(1, 3))
    histograms = np.sqrt(np.concatenate([colour, _gradient_histogram(luminance), _gradient_histogram(coarse)]))
    rows, cols = LAYOUT_GRID
    layout = luminance.reshape(rows, SIZE[1] // rows, cols, SIZE[0] // cols).mean(axis=(1, 3)).ravel()
    return np.concatenate([histograms, LAYOUT_WEIGHT * layout])


def _gradient_histogram(luminance: np.ndarray) -> np.ndarray:
    """Share of pixels per gradient-magnitude bin (forward differences)."""
    dx = np.diff(luminance, axis=1)[:-1]
    dy = np.diff(luminance, axis=0)[:, :-1]
    magnitude = np.hypot(dx, dy).ravel()
    return np.histogram(magnitude, bins=GRADIENT_BINS)[0] / magnitude.size


def statistics_of_files(paths: Iterable[str | os.PathLike]) -> np.ndarray:
    """:func:`frame_statistics` of picture files, decoded by the ingest's decoder at ``SIZE`` (stretched).

    Returns
    -------
    ndarray, shape (n_files, 96)
    """
    return np.stack([frame_statistics(decode_picture(p, SIZE, SIZE).input) for p in paths])


def nearest_distances(queries: np.ndarray, reference: np.ndarray, leave_one_out: bool = False) -> np.ndarray:
    """Distance of every query to its nearest reference frame, shape (n_queries,).

    With ``leave_one_out`` the queries are the reference itself and a frame is not its own neighbour.
    """
    queries, reference = np.asarray(queries, float), np.asarray(reference, float)
    squared = (np.einsum("ij,ij->i", queries, queries)[:, None] + np.einsum("ij,ij->i", reference, reference)[None]
               - 2 * queries @ reference.T)
    if leave_one_out:
        np.fill_diagonal(squared, np.inf)
    return np.sqrt(np.maximum(squared.min(axis=1), 0.0))


def likeness(reference: np.ndarray, queries: np.ndarray, percentile: float = 99.0) -> dict:
    """Which queries lie within the reference collection's own nearest-neighbour distance.

    Parameters
    ----------
    reference : ndarray, shape (n, 96)
        Statistics of the collection (at least 2 frames).
    queries : ndarray, shape (m, 96)
    percentile : float, default=99.0

    Returns
    -------
    dict
        ``threshold`` (the reference's ``percentile`` leave-one-out NN distance), ``distances``
        (m,), ``accepted`` (m,) bool and ``share`` (fraction accepted).
    """
    if len(reference) < 2:
        raise ValueError(f"the reference needs at least 2 frames, got {len(reference)}")
    threshold = float(np.percentile(nearest_distances(reference, reference, leave_one_out=True), percentile))
    distances = nearest_distances(queries, reference)
    accepted = distances <= threshold
    return {"threshold": threshold, "distances": distances, "accepted": accepted, "share": float(accepted.mean())}
