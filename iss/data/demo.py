"""Synthetic ISS HDEV collection for the demo and the tests.

Generates a deterministic (seeded) collection of frames that look like grabs of
the ISS HDEV live camera, so the whole pipeline can run without downloading the
real ~14,000 pictures.

Writes, under ``out_dir``:

- ``collections/YYYYmmdd-HHMMSS.jpg``: one 1280x720 JPEG every ``interval_minutes``
  from ``start`` (``20171113-000000.jpg``, ``20171113-002000.jpg``, ...);
- ``history/history.txt``: the original project's locations file, one line
  ``lat;lon;id;location`` per located frame (about 70% of them), no header, with
  positions along a 51.6 degree inclined ground track;
- ``labels.csv``: ``pictures_id,kind``, the kind each frame was drawn as. It exists
  only to score clusterings; the pipeline never reads it.

Frame kinds (``KINDS``) differ by large-scale layout and colour so they stay
distinguishable at the autoencoder's 48x27 input size, while clouds, colours,
limb curvature and tilt, brightness and positions vary within each kind.
"""

from __future__ import annotations

import csv
import math
import multiprocessing
import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from statistics import NormalDist

import numpy as np
from PIL import Image
from tqdm import tqdm

from iss.artefacts import atomic_path
from iss.processes import exit_with_parent

KINDS: tuple[str, ...] = ("horizon", "horizon_iss", "nadir", "night", "glare", "live_off")

# Share of each kind in a generated collection (drawn per frame, so only roughly).
KIND_PROBABILITIES: dict[str, float] = {
    "horizon": 0.25,
    "horizon_iss": 0.15,
    "nadir": 0.25,
    "night": 0.15,
    "glare": 0.10,
    "live_off": 0.10,
}

FILENAME_FORMAT = "%Y%m%d-%H%M%S"

ISS_INCLINATION_DEG = 51.6
ISS_ORBIT_PERIOD_MINUTES = 92.7
SIDEREAL_DAY_MINUTES = 1436.07
# The orbit plane drifts westward by about 5 degrees a day (J2 precession).
NODAL_REGRESSION_DEG_PER_MINUTE = -5.0 / 1440.0

# Frames are drawn at a fraction of the output size and upscaled: the real
# stream is soft anyway, and this keeps a frame at a few tens of milliseconds.
# Glare is all smooth gradients, so it can be drawn coarser still.
_RENDER_SCALE: dict[str, int] = {}
_DEFAULT_RENDER_SCALE = 2
_MIN_SIZE = (32, 18)

# Extra seed-sequence words so history and frames use independent random streams.
_HISTORY_STREAM = 1_000_003

_KIND_CUMULATIVE = np.cumsum([KIND_PROBABILITIES[kind] for kind in KINDS])

# Colours, RGB in [0, 1].
_DEEP_OCEAN = np.array([0.15, 0.24, 0.62], np.float32)
_SHALLOW_OCEAN = np.array([0.44, 0.47, 0.76], np.float32)
_FOREST = np.array([0.30, 0.31, 0.48], np.float32)
_SCRUB = np.array([0.50, 0.45, 0.66], np.float32)
_OCHRE = np.array([0.66, 0.56, 0.76], np.float32)
_SAND = np.array([0.80, 0.70, 0.86], np.float32)
_RED_ROCK = np.array([0.60, 0.46, 0.66], np.float32)
_CLOUD = np.array([0.70, 0.68, 0.86], np.float32)
_HAZE = np.array([0.74, 0.78, 1.00], np.float32)
_GLOW_WIDE = np.array([0.30, 0.42, 1.00], np.float32)
_GLOW_LINE = np.array([0.78, 0.86, 1.00], np.float32)
_DUSK = np.array([1.1, 1.0, 0.95], np.float32)  # grey-brown tint of the Earth at dusk
_CITY_SODIUM = np.array([1.00, 0.62, 0.24], np.float32)
_CITY_WHITE = np.array([1.00, 0.88, 0.66], np.float32)


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`generate_collection` wrote.

    Attributes
    ----------
    n_frames : int
        Number of frames in the collection (rendered now or already present).
    n_located : int
        Number of lines in the history file.
    kinds : dict of str to int
        Number of frames of each kind, in ``KINDS`` order.
    collection_dir : Path
        Folder holding the JPEG frames.
    history_path : Path
        The ``history.txt`` file.
    labels_path : Path
        The ``labels.csv`` file.
    seconds : float
        Wall-clock time of the call.
    """

    n_frames: int
    n_located: int
    kinds: dict[str, int]
    collection_dir: Path
    history_path: Path
    labels_path: Path
    seconds: float


# --------------------------------------------------------------------------- #
# Small drawing helpers                                                       #
# --------------------------------------------------------------------------- #


def _fractal_noise(rng, height, width, cells, octaves=4, persistence=0.5, stretch=1.0, aspect=None):
    """Smooth noise in [0, 1]: a sum of random grids upsampled with bicubic interpolation.

    ``cells`` is the number of grid cells along the height at the coarsest octave;
    ``stretch`` > 1 elongates features horizontally (cloud streets, streaks). Grid
    sizes do not depend on the image size, so the same generator state gives the
    same field at any resolution; ``aspect`` (default ``width / height``) lets a
    reduced-size field, whose rounded size has a slightly different aspect, match.
    """
    aspect = width / height if aspect is None else aspect
    total = np.zeros((height, width), np.float32)
    amplitude = 1.0
    for octave in range(octaves):
        rows = max(2, round(cells * 2**octave))
        cols = max(2, round(cells * 2**octave * aspect / stretch))
        grid = rng.random((rows, cols), dtype=np.float32)
        total += amplitude * np.asarray(Image.fromarray(grid).resize((width, height), Image.BICUBIC))
        amplitude *= persistence
    low, high = total.min(), total.max()
    return (total - low) / max(float(high - low), 1e-6)


def _standardize(values):
    """Zero mean, unit variance, so thresholds read as coverage fractions."""
    return (values - values.mean()) / max(float(values.std()), 1e-6)


def _coverage_threshold(fraction):
    """Threshold on standardized noise above which ``fraction`` of a normal field lies."""
    return NormalDist().inv_cdf(1.0 - float(np.clip(fraction, 0.005, 0.995)))


def _smoothstep(edge0, edge1, values):
    t = np.clip((values - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _lerp(a, b, t):
    """Blend colours (or images) ``a`` and ``b`` with a per-pixel weight ``t``."""
    t = np.asarray(t, np.float32)
    if t.ndim:  # per-pixel weights apply to every colour channel
        t = t[..., None]
    blend = np.subtract(b, a, dtype=np.float32) * t
    blend += a
    return blend


def _pixel_grid(width, height):
    """Pixel-centre coordinates in frame-height units, origin at the frame centre.

    Returned as a row (1, W) and a column (H, 1) that broadcast, so every
    geometric quantity is resolution independent.
    """
    x = ((np.arange(width, dtype=np.float32) + 0.5 - width / 2) / height)[None, :]
    y = ((np.arange(height, dtype=np.float32) + 0.5 - height / 2) / height)[:, None]
    return x, y


def _sample_mirrored(texture, u, v):
    """Bilinear lookup of ``texture`` (H, W, C) at float pixel coordinates, mirrored at the edges."""
    height, width = texture.shape[:2]
    flat = texture.reshape(height * width, -1)

    def mirror(index, size):
        index = np.mod(index, 2 * size)
        return np.minimum(index, 2 * size - 1 - index)

    u0 = np.floor(u)
    v0 = np.floor(v)
    fu = (u - u0)[..., None]
    fv = (v - v0)[..., None]
    u0 = u0.astype(np.int32)
    v0 = v0.astype(np.int32)
    left, right = mirror(u0, width), mirror(u0 + 1, width)
    top_row, bottom_row = mirror(v0, height) * width, mirror(v0 + 1, height) * width
    top = np.take(flat, top_row + left, axis=0)
    top += (np.take(flat, top_row + right, axis=0) - top) * fu
    bottom = np.take(flat, bottom_row + left, axis=0)
    bottom += (np.take(flat, bottom_row + right, axis=0) - bottom) * fu
    return top + (bottom - top) * fv


def _box_blur3(values):
    """3x3 box blur of a 2-D array (edges replicated); softens point lights into dots."""
    padded = np.pad(values, 1, mode="edge")
    rows = padded[:-2] + padded[1:-1] + padded[2:]
    return (rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]) / 9.0


# --------------------------------------------------------------------------- #
# Scene pieces                                                                #
# --------------------------------------------------------------------------- #


def _day_surface(rng, height, width, style, scale=1.0):
    """Sunlit Earth seen from above: ocean, land or desert, under clouds.

    ``scale`` > 1 shows a wider area (smaller features), for textures that are
    then foreshortened. Returns float32 (height, width, 3) in [0, 1].
    """
    # Broad colours are smooth: draw them at half resolution.
    low_height, low_width = max(8, height // 2), max(8, width // 2)
    aspect = width / height
    tone = _fractal_noise(rng, low_height, low_width, cells=2 * scale, octaves=3, aspect=aspect)
    ground = _lerp(_DEEP_OCEAN, _SHALLOW_OCEAN, tone * rng.uniform(0.3, 0.9))
    land_fraction = {"ocean": rng.uniform(0.0, 0.12), "land": rng.uniform(0.45, 0.85),
                     "desert": rng.uniform(0.75, 1.0)}[style]
    land_noise = _standardize(_fractal_noise(rng, low_height, low_width, cells=1.5 * scale,
                                             octaves=5, persistence=0.6, aspect=aspect))
    threshold = _coverage_threshold(land_fraction)
    land = _smoothstep(threshold - 0.05, threshold + 0.05, land_noise)
    detail = _fractal_noise(rng, low_height, low_width, cells=4 * scale, octaves=4,
                            persistence=0.6, aspect=aspect)
    if style == "desert":
        rock = _lerp(_OCHRE, _RED_ROCK, rng.uniform(0.0, 0.7))
        land_colour = _lerp(rock, _SAND, _smoothstep(0.3, 0.8, detail))
    else:
        vegetation = _lerp(_FOREST, _SCRUB, rng.uniform(0.0, 0.8))
        land_colour = _lerp(vegetation, _OCHRE * 0.75, _smoothstep(0.45, 0.85, detail))
    ground = _lerp(ground, land_colour, land)
    ground = Image.fromarray((np.clip(ground, 0.0, 1.0) * 255).astype(np.uint8), "RGB")
    surface = np.asarray(ground.resize((width, height), Image.BICUBIC), dtype=np.float32)
    surface *= np.float32(1 / 255)
    land = np.asarray(Image.fromarray(land).resize((width, height), Image.BILINEAR))
    # Fields, ridges and valleys: fine brightness texture on land only.
    relief = _fractal_noise(rng, height, width, cells=12 * scale, octaves=4, persistence=0.7)
    surface *= (1.0 + 0.45 * land * (relief - 0.5))[..., None]
    # Sun glint, swell and plankton: the open ocean is never flat in the real frames either.
    ripple = _fractal_noise(rng, height, width, cells=30 * scale, octaves=3, persistence=0.6)
    surface *= (1.0 + 0.4 * (1.0 - land) * (ripple - 0.5))[..., None]

    # Clouds carry the fine detail, so they get the full resolution.
    cloud_fraction = {"ocean": rng.uniform(0.3, 0.9), "land": rng.uniform(0.0, 0.7),
                      "desert": rng.uniform(0.05, 0.3)}[style]
    # From broad frontal bands (few cells) to fields of small cumulus (many cells).
    cloud_cells = math.exp(rng.uniform(math.log(2.0), math.log(16.0))) * scale
    # Octaves down to ~2-pixel features at the full-size working height (360).
    cloud_octaves = max(3, int(math.log2(max(180.0 / cloud_cells, 1.0))) + 1)
    cloud_noise = _standardize(_fractal_noise(rng, height, width, cells=cloud_cells,
                                              octaves=cloud_octaves,
                                              persistence=rng.uniform(0.58, 0.7),
                                              stretch=rng.uniform(1.0, 2.0)))
    threshold = _coverage_threshold(cloud_fraction)
    cover = _smoothstep(threshold - 0.3, threshold + rng.uniform(0.4, 1.0), cloud_noise)  # thin veils too
    # Shadows fall slightly aside of the clouds.
    shift = max(1, height // 90)
    shadow = np.pad(cover, ((shift, 0), (shift, 0)), mode="edge")[:height, :width]
    surface *= (1.0 - 0.3 * shadow)[..., None]
    # Thick cloud cores are brighter than their thin edges.
    brightness = 0.85 + 0.3 * _smoothstep(threshold, threshold + 1.5, cloud_noise)
    brightness *= 1.0 + 0.3 * (ripple - 0.5)  # cloud tops are lumpy too
    return _lerp(surface, _CLOUD * brightness[..., None], cover)


def _surface_style(rng, kind):
    """Ocean, land or desert: views straight down see more land than oblique ones."""
    weights = {"nadir": (0.55, 0.33, 0.12)}.get(kind, (0.6, 0.3, 0.1))
    return ("ocean", "land", "desert")[rng.choice(3, p=weights)]


@dataclass(frozen=True)
class _Limb:
    """A tilted circular Earth limb crossing the frame, Earth below it.

    Lengths are in frame-height units, so one limb can be drawn at any resolution.
    """

    tilt: float  # radians
    top: float  # height of the limb at the frame's middle, from the centre (down > 0)
    radius: float  # radius of curvature; larger is flatter

    @classmethod
    def draw(cls, rng, top_range=(-0.2, -0.04), radius_range=(1.4, 3.2), tilt_deg=8.0):
        return cls(tilt=math.radians(rng.uniform(-tilt_deg, tilt_deg)),
                   top=rng.uniform(*top_range), radius=rng.uniform(*radius_range))

    def geometry(self, width, height):
        """Per pixel: signed distance below the limb (> 0 on Earth) and arc length along it."""
        x, y = _pixel_grid(width, height)
        rotated_x = x * math.cos(self.tilt) + y * math.sin(self.tilt)
        rotated_y = -x * math.sin(self.tilt) + y * math.cos(self.tilt)
        depth = self.top + self.radius - rotated_y
        below = self.radius - np.sqrt(rotated_x**2 + depth**2)
        along = np.arctan2(rotated_x, depth) * self.radius
        return below, along


def _atmosphere(below, rng, strength=1.0):
    """Thin blue glow above the limb over black space, as radiance (H, W, 3)."""
    image = np.zeros(below.shape + (3,), np.float32)
    # The glow is negligible a few percent of the frame above the limb.
    near = np.flatnonzero((below < 0.0) & (below > -0.15))
    above = -below.ravel()[near]
    wide = np.exp(-above / rng.uniform(0.008, 0.02)) * (0.55 * strength)
    line = np.exp(-above / rng.uniform(0.0015, 0.004)) * (0.6 * strength)
    image.reshape(-1, 3)[near] = wide[:, None] * _GLOW_WIDE + line[:, None] * _GLOW_LINE
    return image


def _earth_mask(below):
    """Anti-aliased Earth coverage: one pixel of transition across the limb."""
    return np.clip(below * below.shape[0] + 0.5, 0.0, 1.0)


def _perspective_surface(rng, limb, style, width, height):
    """Sunlit Earth seen obliquely: foreshortened towards the limb, hazy at the limb.

    Returns float32 (height, width, 3), black well above the limb.
    """
    # Wider than tall: the view spans more ground across than in depth near the
    # camera. 320 texels high for a full-size frame (drawn 360 pixels high), fewer
    # for smaller frames: the noise fields are the same at any resolution.
    texture_height = max(32, round(320 * height / 360))
    texture_width = 2 * texture_height
    texture = _day_surface(rng, texture_height, texture_width, style, scale=2.5)
    # A blurred copy stands in for a mipmap level where the texture is minified;
    # stacking both lets one lookup fetch the two.
    texture_8bit = Image.fromarray((np.clip(texture, 0, 1) * 255).astype(np.uint8), "RGB")
    blurred = np.asarray(
        texture_8bit.reduce(4).resize((texture_width, texture_height), Image.BILINEAR),
        dtype=np.float32) / 255.0
    stacked = np.concatenate([texture, blurred], axis=2)

    # The lookup is the costly part: do it at half resolution; the crisp limb
    # edge comes later from the full-resolution mask.
    low_width, low_height = max(8, width // 2), max(8, height // 2)
    below, along = limb.geometry(low_width, low_height)
    pixel = 1.0 / low_height
    earth = np.flatnonzero(below > -2 * pixel)
    below = np.maximum(below.ravel()[earth], 0.0)
    along = np.broadcast_to(along, (low_height, low_width)).ravel()[earth]
    # A ground plane seen from orbit: ground distance grows like 1/(height below horizon).
    horizon_offset = rng.uniform(0.06, 0.14)
    texels_per_unit = rng.uniform(120, 180) * texture_height / 320
    depth = 1.0 / (below + horizon_offset)
    u = along * depth * texels_per_unit + texture_width / 2
    v = depth * texels_per_unit + rng.uniform(0, texture_height)
    sample = _sample_mirrored(stacked, u, v)
    # Where many texels fall in one pixel the sharp lookup aliases; use the blurred one.
    texels_per_pixel = texels_per_unit * depth**2 * pixel
    ground = _lerp(sample[:, :3], sample[:, 3:], _smoothstep(0.7, 2.0, texels_per_pixel))
    ground = _lerp(ground, texture.mean(axis=(0, 1)), _smoothstep(8.0, 30.0, texels_per_pixel))
    # Seen obliquely through more air, clouds and sea blend: less contrast than straight down.
    ground = _lerp(ground, texture.mean(axis=(0, 1)), rng.uniform(0.1, 0.4))
    haze = np.exp(-below / rng.uniform(0.04, 0.12)) * rng.uniform(0.6, 0.9)
    low = np.zeros((low_height * low_width, 3), np.uint8)
    low[earth] = np.clip(_lerp(ground, _HAZE, haze) * 255.0 + 0.5, 0, 255)
    image = Image.fromarray(low.reshape(low_height, low_width, 3), "RGB")
    return np.asarray(image.resize((width, height), Image.BILINEAR), dtype=np.float32) / 255.0


# --------------------------------------------------------------------------- #
# Frame kinds                                                                 #
# --------------------------------------------------------------------------- #


def _render_horizon(rng, width, height, sunlit=False):
    """Black space over a curved, glowing limb and a foreshortened cloudy Earth (``sunlit``: never at
    the terminator or at dusk)."""
    x, _ = _pixel_grid(width, height)
    limb = _Limb.draw(rng)
    below, _ = limb.geometry(width, height)
    earth = _perspective_surface(rng, limb, _surface_style(rng, "horizon"), width, height)
    earth *= rng.uniform(1.1, 1.6)
    # The terminator is sometimes in view: one side of the Earth darker; or it is dusk under the
    # station, the whole Earth dim and grey-brown.
    light = 1.0 if sunlit else rng.random()
    if light < 0.2:
        side = float(rng.choice([-1.0, 1.0]))
        earth *= (rng.uniform(0.3, 0.6) + 0.5 * _smoothstep(-0.9, 0.6, side * x))[..., None]
    elif light < 0.3:
        earth = _lerp(earth, _DUSK * earth.mean(axis=-1, keepdims=True), rng.uniform(0.5, 0.9))
        earth *= rng.uniform(0.35, 0.6)
    mask = _earth_mask(below)
    space = _atmosphere(below, rng) * (1.0 - mask)[..., None]
    return _lerp(space, earth, mask)


def _render_horizon_iss(rng, width, height):
    """A horizon view with part of the station in the right-hand corner."""
    image = _render_horizon(rng, width, height)
    _draw_iss_structure(image, rng)
    return image


def _render_nadir(rng, width, height):
    """Straight down: ocean, land or desert under clouds, filling the frame."""
    image = _day_surface(rng, height, width, _surface_style(rng, "nadir"))
    x, y = _pixel_grid(width, height)
    # Lens vignetting and an uneven sun angle across the wide field.
    vignette = 1.0 - rng.uniform(0.1, 0.3) * (x**2 + y**2) / 1.05
    angle = rng.uniform(0, 2 * math.pi)
    slope = 1.0 + rng.uniform(0.0, 0.25) * (x * math.cos(angle) + y * math.sin(angle))
    image = image * (vignette * slope * rng.uniform(0.85, 1.1))[..., None]
    # Seen through the whole atmosphere and the window, the ground is washed out towards blue-white.
    return _lerp(image, _HAZE * 0.8, rng.uniform(0.0, 0.55))


def _render_night(rng, width, height):
    """Night side: black Earth, clusters of orange city lights, sometimes a faint limb."""
    # Moonlit clouds: a barely visible texture over a black Earth.
    clouds = _fractal_noise(rng, height, width, cells=rng.uniform(1.5, 3.5), octaves=5)
    cloud_cover = _smoothstep(0.45, 0.85, clouds)
    moonlight = rng.uniform(0.01, 0.06)
    image = np.empty((height, width, 3), np.float32)
    image[:] = np.array([0.010, 0.012, 0.020], np.float32)
    image += (moonlight * cloud_cover)[..., None] * np.array([0.8, 0.85, 1.0], np.float32)

    # City lights: clusters of points around a few metropolitan centres, plus towns.
    lights = np.zeros((height, width), np.float32)
    n_clusters = rng.integers(6, 18)
    for _ in range(n_clusters):
        centre = rng.uniform([-0.85, -0.45], [0.85, 0.5])
        spread = rng.uniform(0.01, 0.07, size=2)
        count = rng.integers(20, 260)
        points = centre + rng.standard_normal((count, 2)) * spread
        _add_points(lights, points, rng.lognormal(0.0, 0.6, count), width, height)
    towns = rng.uniform([-0.9, -0.5], [0.9, 0.5], size=(rng.integers(40, 250), 2))
    _add_points(lights, towns, rng.lognormal(-0.7, 0.5, len(towns)), width, height)
    # Points pile into fewer pixels in a smaller frame: keep light per area constant.
    lights *= (height / 360.0) ** 2
    lights = _box_blur3(lights) * (1.0 - 0.75 * cloud_cover)
    # Glow around bright cities, blurred at 1/8 resolution (smooth, and cheap).
    coarse = np.asarray(Image.fromarray(lights).resize((max(2, width // 8), max(2, height // 8)),
                                                        Image.BOX))
    coarse = _box_blur3(_box_blur3(coarse))
    halo = np.asarray(Image.fromarray(coarse.astype(np.float32)).resize((width, height), Image.BICUBIC))
    colour = _lerp(_CITY_SODIUM, _CITY_WHITE, rng.uniform(0.0, 0.5))
    image += (lights * 2.2 + halo * 10.0)[..., None] * colour

    # A faint airglow limb near the top edge in some frames.
    if rng.random() < 0.5:
        limb = _Limb.draw(rng, top_range=(-0.48, -0.3), radius_range=(1.5, 4.0))
        below, _ = limb.geometry(width, height)
        glow = np.exp(np.minimum(below, 0.0) / 0.006) * rng.uniform(0.05, 0.15)
        image = image * _earth_mask(below)[..., None] + glow[..., None] * np.array(
            [0.25, 0.55, 0.45], np.float32)
    return image * rng.uniform(0.8, 1.2)


def _add_points(target, points, brightness, width, height):
    """Accumulate point lights given in frame-height units into ``target`` pixels."""
    cols = np.round(points[:, 0] * height + width / 2).astype(np.int64)
    rows = np.round(points[:, 1] * height + height / 2).astype(np.int64)
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    np.add.at(target, (rows[inside], cols[inside]), brightness[inside].astype(np.float32))


def _render_glare(rng, width, height):
    """The sun in the frame: a horizon view washed by a white star with long rays, a violet veil
    over space and rainbow lens-flare ghosts, like the real frames taken near the terminator."""
    image = _render_horizon(rng, width, height, sunlit=True) * rng.uniform(0.55, 0.9)
    x, y = _pixel_grid(width, height)
    half_width = width / height / 2
    # The sun sits high in the frame, mostly off to one side, sometimes right at the top edge.
    sun = np.array([rng.uniform(0.3, 1.0) * half_width * rng.choice([-1.0, 1.0]), rng.uniform(-0.55, -0.35)],
                   np.float32)
    dx, dy = x - sun[0], y - sun[1]
    distance = np.sqrt(dx**2 + dy**2)
    angle = np.arctan2(dy, dx)
    core = np.exp(-(distance / rng.uniform(0.04, 0.08)) ** 2) * 6.0
    halo = 1.0 / (1.0 + (distance / rng.uniform(0.25, 0.45)) ** 2) * rng.uniform(1.0, 1.6)
    # Diffraction spikes: a few thin, long rays of different lengths.
    n_rays = int(rng.integers(6, 12))
    rays = np.zeros_like(distance)
    for ray_angle in rng.uniform(0.0, 2 * math.pi, n_rays):
        off = np.abs(np.sin(angle - ray_angle)) * distance
        ahead = np.cos(angle - ray_angle) > 0
        rays += (np.exp(-off / 0.004) * np.exp(-distance / rng.uniform(0.2, 0.7)) * ahead) * rng.uniform(0.4, 1.0)
    white = np.array([1.0, 0.97, 1.0], np.float32)
    image = image + (core + halo * 0.6 + rays)[..., None] * white
    # Scattered light tints the sky around the sun violet to red.
    veil_colour = _lerp(np.array([0.40, 0.10, 0.35], np.float32), np.array([0.40, 0.06, 0.10], np.float32),
                        rng.uniform(0.0, 1.0))
    veil = np.exp(-distance / rng.uniform(0.5, 1.0)) * rng.uniform(0.4, 0.8)
    image += veil[..., None] * veil_colour
    # and lifts the black of space to a dark blue-grey across the frame
    image += rng.uniform(0.02, 0.08) * np.array([0.45, 0.6, 0.8], np.float32)
    # The camera's gain is up against the dark sky: grainy all over.
    image += (rng.random((height, width, 1), dtype=np.float32) - 0.5) * rng.uniform(0.02, 0.05)
    # Lens-flare ghosts on the line from the sun through the frame centre, in rainbow tints.
    for _ in range(rng.integers(3, 7)):
        position = sun * (1.0 - rng.uniform(1.2, 2.6))
        radius = rng.uniform(0.015, 0.08)
        ghost_distance = np.sqrt((x - position[0]) ** 2 + (y - position[1]) ** 2)
        disc = _smoothstep(radius, radius * 0.7, ghost_distance)
        hue = rng.uniform(0.0, 2 * math.pi)
        tint = 0.5 + 0.5 * np.cos(hue + np.array([0.0, 2.1, 4.2], np.float32))
        image = image + disc[..., None] * tint * rng.uniform(0.08, 0.25)
    return image


# "Live is off" slates: the stream's flat blue-grey stand-by screen, brighter or darker with the
# encoder's levels; one colour family, so the kind stays one kind.
_SLATE_COLOUR = np.array([0.22, 0.25, 0.40])


def _render_live_off(rng, width, height):
    """'Live is off': a flat noisy blue-grey slate, usually with a caption bar."""
    base = _SLATE_COLOUR * rng.uniform(0.75, 1.25) + rng.uniform(-0.03, 0.03, 3)
    image = np.empty((height, width, 3), np.float32)
    image[:] = base.astype(np.float32)
    # Encoder noise and a slight vertical gradient from the broadcast chain.
    _, y = _pixel_grid(width, height)
    image *= (1.0 + rng.uniform(-0.15, 0.15) * y)[..., None]
    if rng.random() < 0.9:
        _draw_text_bar(image, rng, base)
    # Last, as its number of draws depends on the resolution.
    image += (rng.random((height, width, 1), dtype=np.float32) - 0.5) * rng.uniform(0.01, 0.06)
    return image


def _draw_text_bar(image, rng, base):
    """A caption bar with blocky pseudo-text, like a 'live feed is off' slate."""
    height, width = image.shape[:2]
    bar_height = max(4, int(height * rng.uniform(0.07, 0.12)))
    top = int(height * rng.uniform(0.35, 0.75))
    bar_colour = np.clip(base * rng.uniform(0.4, 0.8) + rng.uniform(0.0, 0.12), 0, 1)
    image[top:top + bar_height] = bar_colour.astype(np.float32)
    glyph_height = max(5, int(bar_height * 0.55))
    stroke = max(1, glyph_height // 5)
    n_glyphs = int(rng.integers(10, 28))
    text_width = n_glyphs * 4 * stroke
    column = max(0, (width - text_width) // 2)
    row = top + (bar_height - 5 * stroke) // 2
    text_colour = np.float32(rng.uniform(0.8, 1.0))
    for _ in range(n_glyphs):
        if rng.random() < 0.15:  # word gap
            column += 4 * stroke
            continue
        # A random 5x3 bitmap reads as a character at a glance.
        bitmap = rng.random((5, 3)) < 0.6
        pixels = np.kron(bitmap, np.ones((stroke, stroke), bool))
        target = image[row:row + pixels.shape[0], column:column + pixels.shape[1]]
        target[pixels[:target.shape[0], :target.shape[1]]] = text_colour
        column += 4 * stroke


def _draw_iss_structure(image, rng):
    """Paint ISS modules, truss and solar arrays in a right-hand corner (25-35% of the frame)."""
    height, width = image.shape[:2]
    x, y = _pixel_grid(width, height)
    half_width = width / height / 2
    # Like the real camera, the station stays on one side of the view.
    corner_x = 1.0
    corner_y = float(rng.choice([-1.0, 1.0], p=(0.2, 0.8)))
    origin = (corner_x * (half_width + 0.05), corner_y * 0.55)
    heading = math.atan2(-corner_y * 0.5, -corner_x * half_width) + rng.uniform(-0.3, 0.3)
    along = (x - origin[0]) * math.cos(heading) + (y - origin[1]) * math.sin(heading)
    across = -(x - origin[0]) * math.sin(heading) + (y - origin[1]) * math.cos(heading)

    params = {
        "module_length": rng.uniform(0.45, 0.8),
        "module_radius": rng.uniform(0.08, 0.13),
        "truss_at": rng.uniform(0.12, 0.3),
        "array_side": float(rng.choice([-1.0, 1.0])),
        "array_both_sides": rng.random() < 0.35,
        "array_start": rng.uniform(0.02, 0.06),
        "array_width": rng.uniform(0.22, 0.38),
        "node_at": rng.uniform(0.4, 0.7),
        "node_length": rng.uniform(0.1, 0.3),
        "has_node": rng.random() < 0.6,
    }
    # Scale the structure until it covers the wanted share of the frame.
    target_coverage = rng.uniform(0.25, 0.35)
    scale = 1.0
    for _ in range(5):
        shapes = _iss_shapes(along / scale, across / scale, params)
        coverage = float(np.mean(shapes["any"]))
        if abs(coverage - target_coverage) < 0.025 or coverage == 0.0:
            break
        scale *= math.sqrt(target_coverage / coverage)
    along = along / scale
    across = across / scale
    light = rng.uniform(0.75, 1.1)

    # Solar arrays: a grid of cells, dark violet to bright gold with the sun angle.
    pixels = shapes["array"]
    if pixels.any():
        cell_p = across[pixels] * 55.0
        cell_q = (along[pixels] - params["truss_at"]) * 55.0
        lines = (np.mod(cell_p, 1.0) < 0.14) | (np.mod(cell_q, 1.0) < 0.14)
        sheen = _smoothstep(-1.2, 1.2, np.sin(cell_p * rng.uniform(0.02, 0.08) + rng.uniform(0, 6))
                            + rng.uniform(-0.6, 0.6))
        colour = _lerp(np.array([0.25, 0.18, 0.16], np.float32),
                       np.array([0.78, 0.56, 0.22], np.float32), sheen)
        colour[lines] = colour[lines] * 0.4 + 0.45
        image[pixels] = colour * light

    # Truss: grey beams with a lattice of diagonals.
    pixels = shapes["truss"]
    if pixels.any():
        a, c = along[pixels], across[pixels]
        lattice = (np.mod((a + c) * 45, 1.0) < 0.25) | (np.mod((a - c) * 45, 1.0) < 0.25)
        image[pixels] = np.where(lattice, np.float32(0.72), np.float32(0.3))[:, None] * light

    # Modules: white cylinders, shaded across their width, with ring seams.
    light_angle = rng.uniform(-1.1, 1.1)
    fabric = np.array([0.95, 0.94, 0.9], np.float32) if rng.random() < 0.7 else \
        np.array([0.92, 0.86, 0.72], np.float32)
    node_radius = params["module_radius"] * 0.75
    for name, radial, axial in (("node", (along - params["node_at"]) / node_radius, across),
                                ("module", across / params["module_radius"], along)):
        pixels = shapes[name]
        if not pixels.any():
            continue
        t = np.clip(np.broadcast_to(radial, pixels.shape)[pixels], -1.0, 1.0)
        axial = np.broadcast_to(axial, pixels.shape)[pixels]
        diffuse = np.clip(t * math.sin(light_angle) + np.sqrt(1.0 - t * t) * math.cos(light_angle),
                          0.0, 1.0)
        shade = 0.3 + 0.65 * diffuse + 0.25 * diffuse**16
        shade *= np.where(np.mod(axial * 12.0, 1.0) < 0.05, np.float32(0.7), np.float32(1.0))
        image[pixels] = np.clip(fabric * shade[:, None] * light, 0.0, 1.0)


def _iss_shapes(along, across, params):
    """Boolean masks of the ISS parts in corner-local coordinates (near parts hide far ones)."""
    radius = params["module_radius"]
    side = params["array_side"]
    off_truss = np.abs(along - params["truss_at"])
    outward = np.abs(across) if params["array_both_sides"] else across * side
    truss = (off_truss < 0.018) & (outward > 0)
    array = ((outward > radius + params["array_start"]) & (off_truss < params["array_width"] / 2)
             & (off_truss > 0.012))
    module = (along < params["module_length"]) & (np.abs(across) < radius)
    if params["has_node"]:
        node = ((np.abs(along - params["node_at"]) < radius * 0.75)
                & (across * -side > 0) & (across * -side < radius + params["node_length"]))
    else:
        node = np.zeros_like(module)
    array &= ~(truss | module | node)
    truss &= ~(module | node)
    node &= ~module
    return {"module": module, "truss": truss, "array": array, "node": node,
            "any": module | truss | array | node}


_RENDERERS = {
    "horizon": _render_horizon,
    "horizon_iss": _render_horizon_iss,
    "nadir": _render_nadir,
    "night": _render_night,
    "glare": _render_glare,
    "live_off": _render_live_off,
}


# --------------------------------------------------------------------------- #
# Public API                                                                  #
# --------------------------------------------------------------------------- #


def _check_size(size):
    try:
        width, height = (int(value) for value in size)
        valid = (width, height) == tuple(size)
    except (TypeError, ValueError):
        valid = False
    if not valid or width < _MIN_SIZE[0] or height < _MIN_SIZE[1]:
        raise ValueError(f"size={size!r}: expected (width, height) integers of at least "
                         f"{_MIN_SIZE}, e.g. (1280, 720)")
    return width, height


def render_frame(kind: str, rng: np.random.Generator, size=(1280, 720)) -> Image.Image:
    """Draw one synthetic HDEV frame.

    Parameters
    ----------
    kind : str
        One of ``KINDS``.
    rng : numpy.random.Generator
        Source of all randomness; the same generator state gives the same picture.
    size : tuple of int, default=(1280, 720)
        Output ``(width, height)``. Layout scales with the height, so a small frame
        is a faithful thumbnail of a large one drawn with the same generator state.

    Returns
    -------
    PIL.Image.Image
        An RGB image of ``size``.

    Raises
    ------
    ValueError
        If ``kind`` is not in ``KINDS`` or ``size`` is not a pair of large enough integers.
    """
    if kind not in _RENDERERS:
        raise ValueError(f"kind={kind!r}: expected one of {KINDS}")
    width, height = _check_size(size)
    scale = _RENDER_SCALE.get(kind, _DEFAULT_RENDER_SCALE)
    work_width = max(_MIN_SIZE[0] // 2, round(width / scale))
    work_height = max(_MIN_SIZE[1] // 2, round(height / scale))
    radiance = _RENDERERS[kind](rng, work_width, work_height)
    # Sensor noise, then 8-bit like the stream.
    radiance = radiance + (rng.random((work_height, work_width, 1), dtype=np.float32) - 0.5) * 0.015
    pixels = (np.clip(radiance, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    if (work_width, work_height) != (width, height):
        image = image.resize((width, height), Image.BICUBIC)
    return image


def frame_kind(seed: int, index: int) -> tuple[str, np.random.Generator]:
    """The kind of frame ``index`` of a collection, and the generator to draw it with.

    Each frame has its own generator seeded by ``(seed, index)``, so frames do not
    depend on each other, on ``n`` or on the number of worker processes.
    """
    rng = np.random.default_rng([seed, index])
    kind = KINDS[int(np.searchsorted(_KIND_CUMULATIVE, rng.random() * _KIND_CUMULATIVE[-1],
                                     side="right"))]
    return kind, rng


def ground_track(minutes, seed: int = 0):
    """ISS sub-satellite points at times ``minutes`` after the collection start.

    A circular orbit inclined at ``ISS_INCLINATION_DEG``: latitude is
    ``asin(sin(i) sin(u))`` for the argument of latitude ``u``, and longitude drifts
    westward as the Earth turns under the orbit. The starting phase and node come
    from ``seed``.

    Returns
    -------
    latitude, longitude : ndarray
        Degrees; longitude wrapped to [-180, 180).
    """
    rng = np.random.default_rng([seed, _HISTORY_STREAM, 0])
    minutes = np.asarray(minutes, dtype=np.float64)
    inclination = math.radians(ISS_INCLINATION_DEG)
    argument = rng.uniform(0, 2 * math.pi) + 2 * math.pi * minutes / ISS_ORBIT_PERIOD_MINUTES
    latitude = np.degrees(np.arcsin(math.sin(inclination) * np.sin(argument)))
    node = rng.uniform(-180, 180) + NODAL_REGRESSION_DEG_PER_MINUTE * minutes
    earth_rotation = 360.0 * minutes / SIDEREAL_DAY_MINUTES
    longitude = (node + np.degrees(np.arctan2(math.cos(inclination) * np.sin(argument),
                                              np.cos(argument))) - earth_rotation)
    longitude = np.mod(longitude + 180.0, 360.0) - 180.0
    return latitude, longitude


# Coarse boxes (name, lat_min, lat_max, lon_min, lon_max), checked in order;
# what no box claims is ocean.
_LAND_BOXES = (
    ("Europe", 36.0, 72.0, -10.0, 40.0),
    ("Africa", 5.0, 36.0, -18.0, 35.0),
    ("Africa", -35.0, 5.0, 8.0, 52.0),
    ("Asia", 25.0, 75.0, 35.0, 180.0),
    ("Asia", 5.0, 25.0, 68.0, 122.0),
    ("Asia", -10.0, 5.0, 95.0, 141.0),
    ("Australia", -44.0, -10.0, 112.0, 154.0),
    ("North America", 25.0, 72.0, -168.0, -55.0),
    ("North America", 7.0, 25.0, -112.0, -77.0),
    ("South America", -56.0, 12.0, -82.0, -34.0),
)


def coarse_location(latitude: float, longitude: float) -> str:
    """Name of the continent or ocean at a point, from coarse lat/lon boxes."""
    for name, lat_min, lat_max, lon_min, lon_max in _LAND_BOXES:
        if lat_min <= latitude < lat_max and lon_min <= longitude < lon_max:
            return name
    if latitude < -45.0:
        return "Southern Ocean"
    if -70.0 <= longitude < 20.0:
        return "Atlantic Ocean"
    if 20.0 <= longitude < 120.0 and latitude < 25.0:
        return "Indian Ocean"
    return "Pacific Ocean"


def history_lines(pictures_ids, minutes, seed: int = 0, fraction: float = 0.7) -> list[str]:
    """Lines of ``history.txt`` (``lat;lon;id;location``) for a seeded share of the frames.

    Parameters
    ----------
    pictures_ids : sequence of str
        Frame ids (file stems), in time order.
    minutes : sequence of float
        Time of each frame, in minutes after the collection start.
    seed : int, default=0
        Picks the located frames and the orbit's starting phase.
    fraction : float, default=0.7
        Share of frames that get a location (rounded to a whole number of frames).

    Returns
    -------
    list of str
        One line per located frame, in time order, without newlines.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"history_fraction={fraction!r}: expected a share between 0 and 1")
    if len(pictures_ids) != len(minutes):
        raise ValueError(f"{len(pictures_ids)} pictures_ids but {len(minutes)} times")
    n = len(pictures_ids)
    rng = np.random.default_rng([seed, _HISTORY_STREAM, 1])
    located = np.sort(rng.choice(n, size=round(fraction * n), replace=False))
    latitude, longitude = ground_track(np.asarray(minutes, dtype=np.float64)[located], seed)
    return [f"{lat:.4f};{lon:.4f};{pictures_ids[i]};{coarse_location(lat, lon)}"
            for i, lat, lon in zip(located, latitude, longitude)]


def _render_to_file(task):
    """Worker: draw frame ``index`` and write it atomically (a killed run leaves no half file)."""
    index, path, seed, size, quality = task
    kind, rng = frame_kind(seed, index)
    image = render_frame(kind, rng, size)
    with atomic_path(path) as partial:
        image.save(partial, format="JPEG", quality=quality)
    return index


def generate_collection(out_dir, n=2000, seed=0, start=datetime(2017, 11, 13), interval_minutes=20,
                        size=(1280, 720), history_fraction=0.7, workers=None, quality=85,
                        progress=True) -> DemoSummary:
    """Write a synthetic ISS HDEV collection, its locations history and its labels.

    Frames whose file already exists with a nonzero size are kept, so re-running
    with the same arguments only fills in what is missing; the history and the
    labels are always rewritten.

    Parameters
    ----------
    out_dir : str or Path
        Receives ``collections/``, ``history/history.txt`` and ``labels.csv``.
    n : int, default=2000
        Number of frames.
    seed : int, default=0
        Seeds everything; frame ``i`` depends only on ``(seed, i)``.
    start : datetime, default=datetime(2017, 11, 13)
        Time of the first frame, which names the files (``YYYYmmdd-HHMMSS.jpg``).
    interval_minutes : float, default=20
        Time between frames.
    size : tuple of int, default=(1280, 720)
        Frame ``(width, height)``.
    history_fraction : float, default=0.7
        Share of frames listed in ``history.txt``.
    workers : int, optional
        Processes drawing frames; ``None`` uses ``os.cpu_count()``. The output does
        not depend on it.
    quality : int, default=85
        JPEG quality.
    progress : bool, default=True
        Show a progress bar.

    Returns
    -------
    DemoSummary

    Raises
    ------
    ValueError
        If ``n``, ``seed``, ``size``, ``interval_minutes``, ``history_fraction``,
        ``workers`` or ``quality`` is out of range.
    """
    began = time.perf_counter()
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ValueError(f"n={n!r}: expected a positive number of frames")
    n = int(n)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r}: expected a non-negative integer")
    size = _check_size(size)
    if interval_minutes <= 0:
        raise ValueError(f"interval_minutes={interval_minutes!r}: expected a positive duration")
    if not 0.0 <= history_fraction <= 1.0:
        raise ValueError(f"history_fraction={history_fraction!r}: expected a share between 0 and 1")
    if workers is not None and workers < 1:
        raise ValueError(f"workers={workers!r}: expected None or at least 1")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality={quality!r}: expected a JPEG quality between 1 and 100")

    out_dir = Path(out_dir)
    collection_dir = out_dir / "collections"
    history_path = out_dir / "history" / "history.txt"
    labels_path = out_dir / "labels.csv"
    collection_dir.mkdir(parents=True, exist_ok=True)
    history_path.parent.mkdir(parents=True, exist_ok=True)

    minutes = [index * interval_minutes for index in range(n)]
    pictures_ids = [(start + timedelta(minutes=offset)).strftime(FILENAME_FORMAT) for offset in minutes]
    if len(set(pictures_ids)) != n:
        raise ValueError(f"interval_minutes={interval_minutes!r}: frames closer than a second "
                         "would share a file name")
    kinds = [frame_kind(seed, index)[0] for index in range(n)]
    paths = [collection_dir / f"{picture_id}.jpg" for picture_id in pictures_ids]
    tasks = [(index, paths[index], seed, size, quality) for index in range(n)
             if not (paths[index].is_file() and paths[index].stat().st_size > 0)]

    processes = min(workers or os.cpu_count() or 1, max(1, len(tasks)))
    with tqdm(total=n, initial=n - len(tasks), unit="frame", disable=not progress) as bar:
        if processes == 1:
            for task in tasks:
                _render_to_file(task)
                bar.update()
        else:
            with multiprocessing.Pool(processes, initializer=exit_with_parent, initargs=(os.getpid(),)) as pool:
                for _ in pool.imap_unordered(_render_to_file, tasks, chunksize=4):
                    bar.update()

    lines = history_lines(pictures_ids, minutes, seed=seed, fraction=history_fraction)
    history_path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    with labels_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["pictures_id", "kind"])
        writer.writerows(zip(pictures_ids, kinds))

    return DemoSummary(
        n_frames=n,
        n_located=len(lines),
        kinds={kind: kinds.count(kind) for kind in KINDS},
        collection_dir=collection_dir,
        history_path=history_path,
        labels_path=labels_path,
        seconds=time.perf_counter() - began,
    )
