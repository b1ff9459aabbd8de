"""Deciding "no good match": checks calibrated on the collection itself.

A nearest-neighbour search always returns its closest guess. Whether that guess is a good
match is decided here by checks, each with a threshold taken from the collection's own
statistics (a high percentile times a margin), so the same rule works for any collection:

``distance``
    The nearest picture is farther than ``percentile(leave-one-out NN distances) * margin``
    (:class:`iss.search.index.SimilarityIndex` computes it). A query far from everything.
``reconstruction``
    The autoencoder reconstructs the query worse than ``percentile(collection errors) *
    margin``: the model cannot represent it (e.g. coarse colour noise).
``texture`` (two-sided)
    Fine texture at ``texture_size`` (320x180 by default, finer than anything the model sees)
    outside the collection's range: ``median |Laplacian|`` of the luminance above
    ``percentile_high * margin`` (pixel noise, "TV static") or below ``percentile_low / margin``
    (a tiny picture blown up, a flat synthetic fill).

Why the texture check exists (measured, see the search README section): at the model's 48x27
input, i.i.d. pixel noise averages to flat grey and lands on the collection's grey "live is
off" slates, closer than a re-encoded copy is to its original; and a Fashion-MNIST garment
scaled up to a frame is as close to a night or glare frame, in latent and in pixel space, as
demo frames are to each other, and the autoencoder reconstructs it as well as its own
pictures. No threshold on latent distance or reconstruction error separates them from
genuine new frames. What gives both away is texture the model never sees.

Near-copy exemption: when the query is as close to a collection picture as a slightly edited
copy of a picture is to the original (``near_copy_distance``, calibrated by editing
collection thumbnails: brightness, crop, JPEG re-encoding), the ``reconstruction`` and
``too smooth`` checks are skipped: an edited copy of an unusual picture is as unusual as the
original, and re-encoding legitimately removes fine detail. ``too noisy`` is never exempt:
noise sits on flat slates closer than any copy.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

DEFAULT_TEXTURE_SIZE = (320, 180)


def texture_score(source: str | os.PathLike | BinaryIO | Image.Image,
                  size: tuple[int, int] = DEFAULT_TEXTURE_SIZE) -> float:
    """Median absolute Laplacian of the luminance at ``size``: fine-texture strength.

    The picture is decoded (JPEG at a reduced scale through ``draft``), converted to
    luminance, resized to ``size`` in floating point (no 8-bit rounding, so the statistic is
    continuous) and filtered by the 4-neighbour Laplacian. The median ignores edges and
    sparse points (stars, city lights) and measures texture spread over the frame.

    Only call this on data that :func:`iss.data.images.decode_picture` accepted (it checks
    the decompression-bomb limit before decoding).

    Parameters
    ----------
    source : path, binary file or PIL image
    size : (int, int), default=(320, 180)
        ``(width, height)`` of the working resolution.

    Returns
    -------
    float
        In grey levels (0 for a flat picture, about 20 for uniform pixel noise).
    """
    if isinstance(source, Image.Image):
        image = source
        image.load()
    else:
        from iss.data.images import open_picture  # the one decoder: upright, transparency on black

        if hasattr(source, "seek"):
            source.seek(0)
        # decode at >= 2x the working size, then resize in float: no 8-bit steps
        image = open_picture(source, min_size=(2 * size[0], 2 * size[1])).image
    grey = image.convert("L").convert("F").resize(tuple(size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    g = np.asarray(grey, dtype=np.float32)
    lap = 4.0 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float(np.median(np.abs(lap)))


def upper_tail(reference_sorted: np.ndarray, values) -> np.ndarray:
    """Share of the reference values at least as large as each value (an empirical p-value)."""
    values = np.asarray(values, dtype=np.float64)
    if len(reference_sorted) == 0:
        return np.ones_like(values)
    below = np.searchsorted(reference_sorted, values, side="left")
    return 1.0 - below / len(reference_sorted)


@dataclass
class Check:
    """One check of one query: its value, threshold and outcome (for JSON and the result page)."""

    name: str
    value: float | None
    threshold: float | None
    passed: bool
    exempt: bool = False
    message: str = ""


@dataclass
class Verdict:
    """Whether a query has a good match, and why.

    Attributes
    ----------
    good_match : bool
    near_copy : bool
        The nearest picture is as close as an edited copy would be.
    checks : list of Check
    reasons : list of str
        One sentence per failed check (empty for a good match).
    """

    good_match: bool
    near_copy: bool
    checks: list[Check] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"good_match": self.good_match, "near_copy": self.near_copy, "reasons": list(self.reasons),
                "checks": {c.name: {k: v for k, v in asdict(c).items() if k != "name"} for c in self.checks}}


@dataclass
class NoveltyCalibration:
    """Thresholds of the query-level checks, with the collection values they came from.

    Parameters
    ----------
    percentile : float
        High percentile used for the upper thresholds (the low one uses ``100 - percentile``).
    margin : float
        Factor applied away from the collection (upper thresholds times it, the lower one
        divided by it).
    reconstruction_errors : float array, shape (n,)
        Per-picture MSE (pixels in [0, 1]) of the collection, or empty when no decoder.
    texture_scores : float array, shape (s,)
        :func:`texture_score` of a sample of collection originals, or empty when they are not
        readable (the texture check is then off).
    near_copy_distances : float array, shape (c,)
        Latent distances between edited copies of collection pictures and their originals.
    texture_size : (int, int)
    """

    percentile: float = 99.0
    margin: float = 1.5
    reconstruction_errors: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    texture_scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    near_copy_distances: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    texture_size: tuple[int, int] = DEFAULT_TEXTURE_SIZE
    min_texture_sample: int = 30

    def __post_init__(self):
        self.reconstruction_errors = np.sort(np.asarray(self.reconstruction_errors, np.float32))
        self.texture_scores = np.sort(np.asarray(self.texture_scores, np.float32))
        self.near_copy_distances = np.sort(np.asarray(self.near_copy_distances, np.float32))
        self.texture_size = (int(self.texture_size[0]), int(self.texture_size[1]))

    # --- thresholds -----------------------------------------------------------------------------
    @property
    def reconstruction_threshold(self) -> float | None:
        if len(self.reconstruction_errors) == 0:
            return None
        return float(np.percentile(self.reconstruction_errors, self.percentile) * self.margin)

    @property
    def texture_enabled(self) -> bool:
        return len(self.texture_scores) >= self.min_texture_sample

    @property
    def texture_high(self) -> float | None:
        if not self.texture_enabled:
            return None
        return float(np.percentile(self.texture_scores, self.percentile) * self.margin)

    @property
    def texture_low(self) -> float | None:
        if not self.texture_enabled:
            return None
        return float(np.percentile(self.texture_scores, 100.0 - self.percentile) / self.margin)

    @property
    def near_copy_distance(self) -> float:
        """Distance under which a query counts as an edited copy: 95th percentile of the calibration edits."""
        if len(self.near_copy_distances) == 0:
            return 0.0
        return float(np.percentile(self.near_copy_distances, 95))

    def summary(self) -> dict:
        """Thresholds and sample sizes, for logs, ``/health`` and the index metadata."""
        return {"percentile": self.percentile, "margin": self.margin,
                "reconstruction_threshold": self.reconstruction_threshold,
                "n_reconstruction": int(len(self.reconstruction_errors)),
                "texture_low": self.texture_low, "texture_high": self.texture_high,
                "n_texture": int(len(self.texture_scores)), "texture_size": list(self.texture_size),
                "near_copy_distance": self.near_copy_distance, "n_near_copy": int(len(self.near_copy_distances))}

    # --- judging --------------------------------------------------------------------------------
    def judge(self, nearest_distance: float, distance_threshold: float, reconstruction_error: float | None,
              texture: float | None) -> Verdict:
        """Apply every check to one query.

        Parameters
        ----------
        nearest_distance : float
            Latent distance to the nearest collection picture.
        distance_threshold : float
            The index's calibrated threshold (``SimilarityIndex.threshold_``).
        reconstruction_error : float or None
            MSE of the query's reconstruction (None: no decoder).
        texture : float or None
            :func:`texture_score` of the query (None: not computed).
        """
        near_copy = bool(nearest_distance <= self.near_copy_distance)
        checks = []
        far = nearest_distance > distance_threshold
        checks.append(Check("distance", float(nearest_distance), float(distance_threshold), not far, False,
                            f"the nearest picture is at distance {nearest_distance:.3g}, beyond the threshold "
                            f"{distance_threshold:.3g} ({self.percentile:g}th percentile of the collection's "
                            f"nearest-neighbour distances x {self.margin:g})" if far else ""))
        threshold = self.reconstruction_threshold
        if threshold is not None and reconstruction_error is not None:
            bad = reconstruction_error > threshold
            checks.append(Check("reconstruction", float(reconstruction_error), threshold, not (bad and not near_copy),
                                bool(bad and near_copy),
                                f"the autoencoder reconstructs it with error {reconstruction_error:.3g}, above "
                                f"{threshold:.3g} (collection {self.percentile:g}th percentile x {self.margin:g}): "
                                f"the model cannot represent it" if bad and not near_copy else ""))
        if self.texture_enabled and texture is not None:
            high, low = self.texture_high, self.texture_low
            noisy, smooth = texture > high, texture < low
            checks.append(Check("texture_noise", float(texture), high, not noisy, False,
                                f"its fine texture ({texture:.3g}) is far noisier than any collection picture's "
                                f"(threshold {high:.3g}): noise or static" if noisy else ""))
            checks.append(Check("texture_smooth", float(texture), low, not (smooth and not near_copy),
                                bool(smooth and near_copy),
                                f"its fine texture ({texture:.3g}) is far smoother than any collection picture's "
                                f"(threshold {low:.3g}): a small or synthetic picture blown up"
                                if smooth and not near_copy else ""))
        reasons = [c.message for c in checks if not c.passed]
        return Verdict(good_match=not reasons, near_copy=near_copy, checks=checks, reasons=reasons)

    # --- persistence ----------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / ".novelty.npz.partial"
        with open(partial, "wb") as f:
            np.savez(f, reconstruction_errors=self.reconstruction_errors, texture_scores=self.texture_scores,
                     near_copy_distances=self.near_copy_distances)
        os.replace(partial, folder / "novelty.npz")
        meta = {"percentile": self.percentile, "margin": self.margin, "texture_size": list(self.texture_size),
                "min_texture_sample": self.min_texture_sample, "summary": self.summary()}
        partial = folder / ".novelty.json.partial"
        partial.write_text(json.dumps(meta, indent=2))
        os.replace(partial, folder / "novelty.json")

    @classmethod
    def load(cls, folder: str | Path) -> "NoveltyCalibration":
        folder = Path(folder)
        meta = json.loads((folder / "novelty.json").read_text())
        with np.load(folder / "novelty.npz", allow_pickle=False) as arrays:
            return cls(percentile=meta["percentile"], margin=meta["margin"],
                       reconstruction_errors=arrays["reconstruction_errors"],
                       texture_scores=arrays["texture_scores"], near_copy_distances=arrays["near_copy_distances"],
                       texture_size=tuple(meta["texture_size"]), min_texture_sample=meta["min_texture_sample"])


def jpeg_bytes(pixels: np.ndarray, quality: int = 90) -> io.BytesIO:
    """A uint8 (h, w, 3) array as an in-memory JPEG file."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    return buffer
