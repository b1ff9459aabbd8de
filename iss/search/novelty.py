"""Deciding "no good match": checks calibrated on the collection itself, and what a confidence means.

A nearest-neighbour search always returns its closest guess. Whether that guess is a good
match is decided here. Every threshold comes from the collection's own pictures, so the same
rule works for any collection and nothing but the collection is needed:

``distance``
    The nearest picture in the autoencoder's latent space is farther than the collection's
    ``percentile`` (99th) of leave-one-out nearest-neighbour distances: fewer than 1 % of the
    collection's pictures are that far from their own nearest neighbour
    (:class:`iss.search.index.SimilarityIndex` keeps those distances).
``appearance``
    The query's colours and gradients, at two scales, are farther from every collection picture
    than the collection's own pictures are from each other
    (:class:`iss.search.appearance.AppearanceModel`: a conformal p-value below ``1 - percentile /
    100``). This is the check that rejects everyday photographs: the 48x27 autoencoder maps a
    temple, a cat or a page of text among its latents as close as a new frame lands (measured:
    every hit of scikit-learn's ``china.jpg`` within the distance threshold), but their hues,
    saturations and edges are nothing like sky, clouds, land and space.
``texture_noise`` / ``texture_smooth``
    Fine texture (median absolute Laplacian at ``texture_size``) above ``percentile * margin``
    or below ``(100 - percentile) percentile / margin`` of the collection's: pixel noise ("TV
    static") and blown-up small or synthetic pictures, which the 48x27 model cannot tell from
    flat slates or night frames.

Both p-value checks wrongly reject about ``1 - percentile / 100`` of genuinely new pictures of
the collection's kind each (the guarantee of a conformal p-value under exchangeability), so
held-out frames are accepted at about 98 % (see ``make bench``, ``accept_rate_in_collection``).

Near copies: when the query is as close to a collection picture as a slightly edited copy of a
picture is to the original, both in latent distance (``near_copy_distance``) and in the
correlation of their thumbnails (``near_copy_correlation``, :func:`thumb_correlation`), both
calibrated by editing collection thumbnails (brightness, crop, JPEG re-encoding), the
``appearance`` and ``texture_smooth`` checks are skipped: re-encoding at low quality changes the
fine texture and its histograms, and an edited copy of an unusual picture is as unusual as the
original. The correlation matters: at 48x27 every dark picture is near every other, and a photograph
of deep space lands within an edited copy's latent distance of a night frame, while its
thumbnail does not correlate with it. ``texture_noise`` is never exempt: pixel noise sits on
flat slates closer than any copy.

Confidence (:meth:`NoveltyCalibration.confidences`): for a good match, a hit's confidence is the
smaller of its distance p-value and the query's appearance p-value, so a good match's first hit
is always at least ``1 - percentile / 100`` and a confidence reads the same way whichever check
limits it (:data:`CONFIDENCE_MEANS`); with no good match every confidence is 0.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from iss.artefacts import atomic_path, write_text
from iss.search.appearance import DEFAULT_SIZE, AppearanceModel, texture_of, working_rgb

DEFAULT_TEXTURE_SIZE = DEFAULT_SIZE
NOVELTY_VERSION = 3  # 2: appearance check, no reconstruction check; 3: worse-group appearance score

CONFIDENCE_MEANS = ("A confidence of 80 % means the query is at least as close to that picture, and looks at least "
                    "as much like the collection, as 80 % of the collection's own pictures are to their nearest "
                    "neighbour: a typical new picture of the collection's kind scores about 30 % (the smaller of two "
                    "such shares), and under {alpha:.0%} is no match.")


def confidence_means(percentile: float) -> str:
    """:data:`CONFIDENCE_MEANS` for a ``threshold_percentile``: one sentence, for the page and the JSON."""
    return CONFIDENCE_MEANS.format(alpha=1.0 - float(percentile) / 100.0)


def texture_score(source, size: tuple[int, int] = DEFAULT_TEXTURE_SIZE) -> float:
    """Median absolute Laplacian of the luminance at ``size``: fine-texture strength.

    The picture is decoded at ``size`` (:func:`iss.search.appearance.working_rgb`: a JPEG at a
    reduced scale through ``draft``) and its luminance filtered by the 4-neighbour Laplacian. The
    median ignores edges and sparse points (stars, city lights) and measures texture spread over
    the frame.

    Returns
    -------
    float
        In grey levels (0 for a flat picture, about 20 for uniform pixel noise).
    """
    return texture_of(working_rgb(source, size))


def thumb_correlations(a: np.ndarray, b: np.ndarray, pool: int = 4) -> np.ndarray:
    """Normalised cross-correlation of pairs of thumbnails, pooled by ``pool``.

    Parameters
    ----------
    a, b : uint8 arrays, shape (m, h, w, 3)
        The pairs, row by row.

    Returns
    -------
    float32 array, shape (m,)
        In [-1, 1]. Pooling (96x54 -> 24x13) makes it tolerate the shifts of a 2-5 % crop; each
        channel is taken about its own mean, so brightness, contrast and colour casts do not
        count. A picture flatter than 2 grey levels of spread correlates with nothing (0), not
        even another flat one: whether a flat picture is like the collection is left to the
        appearance check.
    """
    def pooled(x):
        x = np.asarray(x, np.float32)
        n, h, w = x.shape[0], x.shape[1] // pool * pool, x.shape[2] // pool * pool
        x = x[:, :h, :w].reshape(n, h // pool, pool, w // pool, pool, -1).mean(axis=(2, 4))
        return (x - x.mean(axis=(1, 2), keepdims=True)).reshape(n, -1)

    x, y = pooled(a), pooled(b)
    floor = x.shape[1] * 2.0 ** 2  # sum of squares of a spread of 2 grey levels
    norms = np.maximum(np.einsum("ij,ij->i", x, x), floor) * np.maximum(np.einsum("ij,ij->i", y, y), floor)
    return (np.einsum("ij,ij->i", x, y) / np.sqrt(norms)).astype(np.float32)


def thumb_correlation(a: np.ndarray, b: np.ndarray, pool: int = 4) -> float:
    """:func:`thumb_correlations` of one pair of thumbnails (uint8 (h, w, 3), same shape)."""
    return float(thumb_correlations(np.asarray(a)[None], np.asarray(b)[None], pool)[0])


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
    appearance_p : float or None
        The query's appearance p-value (1 for a near copy, None when the check is off).
    checks : list of Check
    reasons : list of str
        One sentence per failed check (empty for a good match).
    """

    good_match: bool
    near_copy: bool
    appearance_p: float | None = None
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
        The p-value checks reject below ``1 - percentile / 100``; the texture guards use this
        percentile (and ``100 - percentile``) of the collection's textures.
    margin : float
        Factor applied away from the collection by the texture guards only (upper threshold
        times it, lower one divided by it).
    appearance : AppearanceModel or None
        Appearance descriptors of a sample of collection originals (None: the check is off).
    texture_scores : float array, shape (s,)
        :func:`texture_score` of a sample of collection originals, or empty when they are not
        readable (the texture checks are then off).
    near_copy_distances : float array, shape (c,)
        Latent distances between edited copies of collection pictures and their originals.
    near_copy_correlations : float array, shape (c,)
        :func:`thumb_correlation` between the same copies and their originals.
    texture_size : (int, int)
        Working size ``(width, height)`` of the appearance and texture checks.
    """

    percentile: float = 99.0
    margin: float = 1.5
    appearance: AppearanceModel | None = None
    texture_scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    near_copy_distances: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    near_copy_correlations: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    texture_size: tuple[int, int] = DEFAULT_TEXTURE_SIZE
    min_texture_sample: int = 30

    def __post_init__(self):
        self.texture_scores = np.sort(np.asarray(self.texture_scores, np.float32))
        self.near_copy_distances = np.sort(np.asarray(self.near_copy_distances, np.float32))
        self.near_copy_correlations = np.sort(np.asarray(self.near_copy_correlations, np.float32))
        self.texture_size = (int(self.texture_size[0]), int(self.texture_size[1]))

    # --- thresholds -----------------------------------------------------------------------------
    @property
    def alpha(self) -> float:
        """Smallest p-value (and confidence) of a good match: ``1 - percentile / 100``."""
        return 1.0 - self.percentile / 100.0

    @property
    def texture_enabled(self) -> bool:
        return len(self.texture_scores) >= self.min_texture_sample

    @property
    def appearance_enabled(self) -> bool:
        return self.appearance is not None and len(self.appearance) >= self.min_texture_sample

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
    def appearance_threshold(self) -> float | None:
        return self.appearance.threshold(self.percentile) if self.appearance_enabled else None

    @property
    def near_copy_distance(self) -> float:
        """Distance under which a query counts as an edited copy: 95th percentile of the calibration edits."""
        if len(self.near_copy_distances) == 0:
            return 0.0
        return float(np.percentile(self.near_copy_distances, 95))

    @property
    def near_duplicate_distance(self) -> float:
        """Latent distance under which two collection pictures are near-duplicates: the median edit.

        Stricter than :attr:`near_copy_distance` (95th percentile) on purpose: a search compares
        one query with its nearest picture, a collection's list compares all n^2/2 pairs, whose
        tail of ordinary close neighbours the 95th percentile lets in (measured on the demo:
        1,050 pairs chained into sets of 329 and 41 horizon frames of different clouds and
        colours; with the median edit 85 pairs, mostly the identical "live is off" slates).
        """
        if len(self.near_copy_distances) == 0:
            return 0.0
        return float(np.percentile(self.near_copy_distances, 50))

    @property
    def near_copy_correlation(self) -> float:
        """Thumbnail correlation above which a query can be an edited copy: 1st percentile of the edits."""
        if len(self.near_copy_correlations) == 0:
            return 1.0
        return float(np.percentile(self.near_copy_correlations, 1))

    def is_near_copy(self, nearest_distance: float, correlation: float | None) -> bool:
        """As close to its nearest picture as an edited copy, in latent distance and thumbnail correlation."""
        return bool(nearest_distance <= self.near_copy_distance
                    and (correlation is None or correlation >= self.near_copy_correlation))

    def summary(self) -> dict:
        """Thresholds and sample sizes, for logs, ``/health`` and the index metadata."""
        return {"percentile": self.percentile, "margin": self.margin, "alpha": round(self.alpha, 6),
                "appearance_threshold": self.appearance_threshold,
                "n_appearance": 0 if self.appearance is None else len(self.appearance),
                "texture_low": self.texture_low, "texture_high": self.texture_high,
                "n_texture": int(len(self.texture_scores)), "texture_size": list(self.texture_size),
                "near_copy_distance": self.near_copy_distance, "near_copy_correlation": self.near_copy_correlation,
                "n_near_copy": int(len(self.near_copy_distances))}

    @property
    def n_sampled(self) -> int:
        """Collection originals sampled for the appearance and texture checks."""
        return int(len(self.texture_scores))

    def with_samples(self, descriptors: np.ndarray, textures: np.ndarray) -> "NoveltyCalibration":
        """This calibration with more sampled originals (appearance descriptors and their textures)."""
        descriptors = np.asarray(descriptors, np.float32)
        if self.appearance is not None:
            descriptors = np.concatenate([self.appearance.descriptors, descriptors])
        appearance = AppearanceModel(descriptors) if len(descriptors) >= 2 else None
        return NoveltyCalibration(self.percentile, self.margin, appearance,
                                  np.concatenate([self.texture_scores, np.asarray(textures, np.float32)]),
                                  self.near_copy_distances, self.near_copy_correlations, self.texture_size,
                                  self.min_texture_sample)

    # --- judging --------------------------------------------------------------------------------
    def judge(self, nearest_distance: float, distance_confidence: float, distance_threshold: float,
              appearance_score: float | None, texture: float | None, correlation: float | None = None) -> Verdict:
        """Apply every check to one query.

        Parameters
        ----------
        nearest_distance : float
            Latent distance to the nearest collection picture.
        distance_confidence : float
            Its p-value: ``SimilarityIndex.confidence(nearest_distance)``.
        distance_threshold : float
            The distance at which that p-value falls to ``alpha`` (``SimilarityIndex.threshold_``),
            for the message.
        appearance_score : float or None
            :meth:`AppearanceModel.score` of the query (None: not computed).
        texture : float or None
            :func:`texture_score` of the query (None: not computed).
        correlation : float or None
            :func:`thumb_correlation` of the query and its nearest picture (None: not computed).
        """
        near_copy = self.is_near_copy(nearest_distance, correlation)
        alpha = self.alpha
        checks = []
        far = distance_confidence < alpha
        checks.append(Check("distance", float(nearest_distance), float(distance_threshold), not far, False,
                            f"the nearest picture is at distance {nearest_distance:.3g}, beyond the threshold "
                            f"{distance_threshold:.3g}: fewer than {alpha:.0%} of the collection's pictures are "
                            f"that far from their own nearest neighbour" if far else ""))
        appearance_p = None
        if self.appearance_enabled and appearance_score is not None:
            appearance_p = float(self.appearance.p_value(appearance_score)[0])
            unlike = appearance_p < alpha
            checks.append(Check("appearance", float(appearance_score), self.appearance_threshold,
                                not (unlike and not near_copy), bool(unlike and near_copy),
                                f"its colours and textures (score {appearance_score:.3g}) are farther from every "
                                f"collection picture than {self.percentile:g}% of the collection's pictures are "
                                f"from each other (threshold {self.appearance_threshold:.3g}): it does not look "
                                f"like this collection" if unlike and not near_copy else ""))
            if near_copy:
                appearance_p = 1.0
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
        return Verdict(good_match=not reasons, near_copy=near_copy, appearance_p=appearance_p, checks=checks,
                       reasons=reasons)

    def confidences(self, verdict: Verdict, distance_confidences) -> np.ndarray:
        """Confidence of each hit: ``min(distance p-value, appearance p-value)``; all 0 without a good match.

        With the verdict's own thresholds, a good match's first hit is at least ``alpha``.
        """
        distance_confidences = np.asarray(distance_confidences, np.float32)
        if not verdict.good_match:
            return np.zeros_like(distance_confidences)
        cap = 1.0 if verdict.appearance_p is None else verdict.appearance_p
        return np.minimum(distance_confidences, np.float32(cap))

    # --- persistence ----------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {"texture_scores": self.texture_scores, "near_copy_distances": self.near_copy_distances,
                  "near_copy_correlations": self.near_copy_correlations}
        if self.appearance is not None:
            arrays.update(self.appearance.state())
        with atomic_path(folder / "novelty.npz") as partial, open(partial, "wb") as f:
            np.savez(f, **arrays)
        meta = {"version": NOVELTY_VERSION, "percentile": self.percentile, "margin": self.margin,
                "texture_size": list(self.texture_size), "min_texture_sample": self.min_texture_sample,
                "summary": self.summary()}
        write_text(folder / "novelty.json", json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: str | Path) -> "NoveltyCalibration":
        """Read what :meth:`save` wrote; ValueError for a calibration of an older version (rebuild it)."""
        folder = Path(folder)
        meta = json.loads((folder / "novelty.json").read_text())
        if meta.get("version") != NOVELTY_VERSION:
            raise ValueError(f"{folder / 'novelty.json'} is version {meta.get('version')}, this code reads "
                             f"{NOVELTY_VERSION}")
        with np.load(folder / "novelty.npz", allow_pickle=False) as arrays:
            appearance = AppearanceModel.from_state(arrays) if "appearance_descriptors" in arrays else None
            return cls(percentile=meta["percentile"], margin=meta["margin"], appearance=appearance,
                       texture_scores=arrays["texture_scores"], near_copy_distances=arrays["near_copy_distances"],
                       near_copy_correlations=arrays["near_copy_correlations"],
                       texture_size=tuple(meta["texture_size"]), min_texture_sample=meta["min_texture_sample"])
