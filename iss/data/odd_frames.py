"""Odd frames injected into the demo collection, so the outlier list can be checked.

A real camera archive holds a few frames that are nothing like the rest: a broadcast test
pattern, a frame washed by a large lens reflection, a frame half lost in transmission. The
outlier search (``iss outliers``, the server's ``/outliers``) should surface exactly those. The
demo gets one of each, at times between regular frames, and ``odd_frames.csv`` lists them
(``pictures_id,kind``) so a test or a person can check where they rank. They are not in
``labels.csv``: clustering scores ignore them.
"""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from iss.artefacts import atomic_path

ODD_KINDS = ("test_pattern", "lens_reflection", "half_black")
ODD_FILE = "odd_frames.csv"

# SMPTE-like colour bars, top 2/3 of the frame (75% amplitude)
_BARS = [(191, 191, 191), (191, 191, 0), (0, 191, 191), (0, 191, 0), (191, 0, 191), (191, 0, 0), (0, 0, 191)]


def _inside(distance: np.ndarray, radius: float, softness: float) -> np.ndarray:
    """1 inside ``radius``, 0 outside, a logistic edge ``softness`` wide (tanh: no overflow)."""
    return 0.5 * (1.0 - np.tanh((distance - radius) / (2.0 * softness)))


def test_pattern(size: tuple[int, int]) -> Image.Image:
    """A broadcast colour-bar test pattern of ``size`` (width, height), with a grey ramp below."""
    width, height = size
    image = Image.new("RGB", size, (0, 0, 0))
    draw = ImageDraw.Draw(image)
    bar = width / len(_BARS)
    for k, colour in enumerate(_BARS):
        draw.rectangle((round(k * bar), 0, round((k + 1) * bar) - 1, int(height * 0.67)), fill=colour)
    ramp = np.linspace(0, 255, width, dtype=np.float32)
    strip = np.repeat(ramp[None, :, None], height - int(height * 0.75), axis=0).repeat(3, axis=2)
    image.paste(Image.fromarray(strip.astype(np.uint8)), (0, int(height * 0.75)))
    return image


def lens_reflection(base: Image.Image, rng: np.random.Generator) -> Image.Image:
    """``base`` washed by a large lens reflection: a bright ring filling most of the frame and a
    chain of coloured ghosts through the centre, as when the sun hits the window at an angle."""
    width, height = base.size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x, y = (x - width / 2) / height, (y - height / 2) / height
    cx, cy = rng.uniform(-0.3, 0.3), rng.uniform(-0.1, 0.1)
    distance = np.hypot(x - cx, y - cy)
    radius = rng.uniform(0.38, 0.45)
    ring = np.exp(-((distance - radius) / 0.035) ** 2)
    disc = 0.55 * _inside(distance, radius, 0.02)
    light = (ring[..., None] * np.array([1.0, 0.75, 1.0]) + disc[..., None] * np.array([0.55, 1.0, 0.6]))
    for k in range(5):  # ghosts along the line through the centre
        t = -0.6 + 0.3 * k
        gx, gy, gr = -cx * t, -cy * t, rng.uniform(0.04, 0.1)
        ghost = _inside(np.hypot(x - gx, y - gy), gr, 0.01)
        light += ghost[..., None] * rng.uniform([0.2, 0.4, 0.6], [0.9, 1.0, 1.0]) * 0.7
    pixels = np.asarray(base, dtype=np.float32) / 255.0
    washed = 1.0 - (1.0 - pixels) * np.exp(-light * 2.2)  # screen-like: reflections only add light
    return Image.fromarray((np.clip(washed, 0, 1) * 255 + 0.5).astype(np.uint8))


def half_black(base: Image.Image) -> Image.Image:
    """``base`` with its lower half black, as when a frame is cut short in transmission."""
    pixels = np.asarray(base).copy()
    pixels[pixels.shape[0] // 2:] = 0
    return Image.fromarray(pixels)


def add_odd_frames(out_dir: str | Path, n: int, start: datetime = datetime(2017, 11, 13),
                   interval_minutes: float = 20, size: tuple[int, int] = (1280, 720), seed: int = 0,
                   quality: int = 85) -> list[tuple[str, str]]:
    """Write one frame of each ``ODD_KINDS`` into ``out_dir/collections`` and list them in ``odd_frames.csv``.

    Each goes half an interval after a regular frame (at 1/4, 1/2 and 3/4 of the collection),
    named like them (``YYYYmmdd-HHMMSS.jpg``), so ingest gives it a time. Idempotent: the same
    arguments write the same files.

    Parameters
    ----------
    out_dir : str or Path
        The demo folder (holds ``collections/``).
    n : int
        Number of regular frames (places the odd ones inside the collection's time span).
    start, interval_minutes, size, seed, quality
        As for :func:`iss.data.demo.generate_collection`.

    Returns
    -------
    list of (str, str)
        ``(pictures_id, kind)`` of the odd frames.
    """
    from iss.data.demo import FILENAME_FORMAT, render_frame

    out_dir = Path(out_dir)
    collection = out_dir / "collections"
    collection.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 7_777_777])
    written = []
    for k, kind in enumerate(ODD_KINDS):
        index = max(0, min(n - 1, (k + 1) * n // (len(ODD_KINDS) + 1)))
        when = start + timedelta(minutes=(index + 0.5) * interval_minutes, seconds=k)  # distinct if n is tiny
        picture_id = when.strftime(FILENAME_FORMAT)
        if kind == "test_pattern":
            image = test_pattern(size)
        elif kind == "lens_reflection":
            image = lens_reflection(render_frame("horizon", rng, size), rng)
        else:
            image = half_black(render_frame("nadir", rng, size))
        path = collection / f"{picture_id}.jpg"
        with atomic_path(path) as partial:
            image.save(partial, format="JPEG", quality=quality)
        written.append((picture_id, kind))
    with (out_dir / ODD_FILE).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["pictures_id", "kind"])
        writer.writerows(written)
    return written


def read_odd_frames(out_dir: str | Path) -> dict[str, str]:
    """``{pictures_id: kind}`` from ``out_dir/odd_frames.csv`` (empty when there is none)."""
    path = Path(out_dir) / ODD_FILE
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["pictures_id"]: row["kind"] for row in csv.DictReader(handle)}
