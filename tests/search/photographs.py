"""Query pictures from outside the collection, for the tests and ``benchmarks/search.py``.

- :func:`real_photographs`: real photographs that installed packages ship in their data folders
  (scikit-learn's two, matplotlib's portrait, scikit-image's photographs: people, a cat, objects,
  a page of text, textures, microscopy, the Moon, a deep-space field, a rocket launch). Nothing
  is downloaded. scikit-image's are used when it is installed (it is in requirements.txt).
- :func:`generated_negatives`: synthetic pictures (noise, flat colours, gradients, text, a
  checkerboard, Fashion-MNIST garments blown up to a frame).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from iss.config import datasets_dir

# scikit-image's sample pictures that are photographs (not drawings, charts or synthetic patterns)
SKIMAGE_PHOTOGRAPHS = ("astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "clock_motion.png",
                       "coffee.png", "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png",
                       "microaneurysms.png", "moon.png", "motorcycle_left.png", "motorcycle_right.png", "page.png",
                       "retina.jpg", "rocket.jpg", "text.png")


def real_photograph_files() -> dict[str, Path]:
    """Name -> file of every real photograph found in the installed packages."""
    import matplotlib
    import sklearn.datasets

    files = {"china": Path(sklearn.datasets.__file__).parent / "images" / "china.jpg",
             "flower": Path(sklearn.datasets.__file__).parent / "images" / "flower.jpg",
             "grace_hopper": Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"}
    try:
        import skimage.data
    except ImportError:
        skimage = None
    if skimage is not None:
        folder = Path(skimage.data.__file__).parent
        files.update({f"skimage_{name.rsplit('.', 1)[0]}": folder / name for name in SKIMAGE_PHOTOGRAPHS})
    return {name: path for name, path in files.items() if path.is_file()}


def real_photographs() -> dict[str, bytes]:
    """Name -> file bytes of :func:`real_photograph_files` (JPEG or PNG, as shipped)."""
    return {name: path.read_bytes() for name, path in real_photograph_files().items()}


def encoded(image: Image.Image, fmt: str = "PNG", quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, quality=quality)
    return buffer.getvalue()


def generated_negatives(size=(1280, 720), seed: int = 0, n_fashion: int = 3) -> dict[str, bytes]:
    """Name -> PNG bytes of synthetic pictures unlike any camera frame."""
    rng = np.random.default_rng(seed)
    w, h = size
    out = {"uniform_noise": encoded(Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))),
           "gaussian_noise": encoded(Image.fromarray(np.clip(rng.normal(128, 40, (h, w, 3)), 0, 255).astype(np.uint8)))}
    for name, colour in [("white", (255, 255, 255)), ("black", (0, 0, 0)), ("grey", (128, 128, 128)),
                         ("blue", (40, 60, 160)), ("red", (200, 30, 30))]:
        out[f"flat_{name}"] = encoded(Image.new("RGB", size, colour))
    ramp = np.linspace(0, 255, w, dtype=np.float32)[None, :, None].repeat(h, 0).repeat(3, 2)
    out["gradient_grey"] = encoded(Image.fromarray(ramp.astype(np.uint8)))
    down = np.linspace(0, 255, h, dtype=np.float32)[:, None].repeat(w, 1)
    out["gradient_colour"] = encoded(Image.fromarray(np.stack([down, np.full((h, w), 80.0), 255 - down], 2).astype(np.uint8)))
    red = Image.new("RGB", size, (220, 30, 30))
    ImageDraw.Draw(red).text((w // 3, h // 2), "HELLO WORLD " * 3, fill=(255, 255, 255))
    out["red_square_text"] = encoded(red)
    page = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(page)
    for line in range(h // 18):
        draw.text((20, 18 * line + 4), "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 3, fill=(0, 0, 0))
    out["text_page"] = encoded(page)
    squares = (np.indices((h, w)) // 80).sum(axis=0) % 2 * 255
    out["checkerboard"] = encoded(Image.fromarray(squares.astype(np.uint8)).convert("RGB"))
    fashion = datasets_dir() / "fashion_mnist.npz"
    if fashion.is_file():
        with np.load(fashion) as data:
            items = data["x"][rng.choice(len(data["x"]), n_fashion, replace=False)]
        for i, item in enumerate(items):
            out[f"fashion_mnist_{i}"] = encoded(Image.fromarray(item).convert("RGB").resize(size, Image.BILINEAR))
    return out
