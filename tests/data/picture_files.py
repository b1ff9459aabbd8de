"""Small real picture files for the data tests: good frames and every kind of bad file."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def frame(seed: int, size=(320, 180)) -> Image.Image:
    """A smooth, ISS-ish RGB frame (gradient sky over a noisy 'earth'), deterministic per seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    y = np.linspace(0, 1, h)[:, None, None]
    x = np.linspace(0, 1, w)[None, :, None]
    base = rng.uniform(0, 1, 3)[None, None, :]
    pixels = 255 * np.clip(base * y + 0.3 * x * (1 - base) + 0.05 * rng.standard_normal((h, w, 1)), 0, 1)
    return Image.fromarray(pixels.astype(np.uint8))


def jpeg_bytes(image: Image.Image, **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=save_args.pop("quality", 90), **save_args)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A ~100-byte PNG whose header announces ``width x height`` pixels (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + png_chunk(b"IEND", b""))


def two_tone(size=(320, 180), top=(255, 0, 0), bottom=(0, 0, 255)) -> Image.Image:
    """Top half one colour, bottom half another (to see where EXIF rotation puts them)."""
    w, h = size
    image = Image.new("RGB", size, bottom)
    image.paste(Image.new("RGB", (w, h // 2), top), (0, 0))
    return image


GOOD_KINDS = ("rgb", "png_alpha", "cmyk", "grayscale", "palette", "exif_rotated", "gray16")
BAD_KINDS = {  # file name -> expected reason
    "20200101-000100.jpg": "empty",
    "20200101-000200.jpg": "truncated",
    "20200101-000300.jpg": "not_image",
    "20200101-000400.png": "too_large",
}
# Names that older versions refused (bad_id, duplicate_id): accepted, with these ids.
ODD_NAMED = {
    "bad id with spaces.jpg": "bad_id_with_spaces_c73c0ecb",
    ("x" * 70) + ".jpg": "x" * 55 + "_50f3c877",
    "20200101-000000.png": "20200101-000000_4697362c",  # 20200101-000000.jpg holds the plain stem
}
SKIPPED_KINDS = {  # entries that are not pictures -> expected reason
    "notes.txt": "not_picture",
    ".20200101-000500.jpg.part": "temporary",
}


def make_messy_folder(folder: Path) -> tuple[list[str], dict[str, str]]:
    """A collection with one good picture of every colour-mode kind, odd names, and every kind of bad file.

    Returns
    -------
    good_ids : list of str
        Including the ids of :data:`ODD_NAMED`.
    bad : dict of file name to expected rejection reason
    """
    folder.mkdir(parents=True, exist_ok=True)
    good = []

    def name(k: int) -> str:
        return f"20200101-{k:02d}0000"

    pictures = {
        "rgb": frame(1),
        "png_alpha": Image.new("RGBA", (320, 180), (255, 0, 0, 128)),
        "cmyk": Image.new("CMYK", (320, 180), (0, 255, 255, 0)),
        "grayscale": frame(2).convert("L"),
        "palette": frame(3).convert("P"),
    }
    for k, kind in enumerate(GOOD_KINDS):
        pid = name(k) if k else "20200101-000000"
        if kind == "exif_rotated":
            exif = Image.Exif()
            exif[0x0112] = 6
            (folder / f"{pid}.jpg").write_bytes(jpeg_bytes(two_tone(), exif=exif))
        elif kind == "gray16":
            values = (np.arange(180 * 320, dtype=np.uint32).reshape(180, 320) * 7 % 65536).astype(np.uint16)
            Image.fromarray(values).save(folder / f"{pid}.png")
        elif kind in ("png_alpha", "palette"):
            pictures[kind].save(folder / f"{pid}.png")
        else:
            (folder / f"{pid}.jpg").write_bytes(jpeg_bytes(pictures[kind]))
        good.append(pid)
    (folder / "20200101-000100.jpg").write_bytes(b"")
    full = jpeg_bytes(frame(9, (640, 360)))
    (folder / "20200101-000200.jpg").write_bytes(full[: len(full) // 2])
    (folder / "20200101-000300.jpg").write_text("this is a text file, not a picture\n")
    (folder / "20200101-000400.png").write_bytes(bomb_png())
    (folder / "bad id with spaces.jpg").write_bytes(jpeg_bytes(frame(5)))
    (folder / (("x" * 70) + ".jpg")).write_bytes(jpeg_bytes(frame(6)))
    frame(7).save(folder / "20200101-000000.png")
    good += list(ODD_NAMED.values())
    # Entries that are not pictures at all: skipped (SKIPPED_KINDS), and an empty sub-folder.
    (folder / "notes.txt").write_text("not a picture extension")
    (folder / ".20200101-000500.jpg.part").write_bytes(full[:100])
    (folder / "subfolder").mkdir(exist_ok=True)
    return good, dict(BAD_KINDS)


def write_frames(folder: Path, n: int, start: int = 0, size=(320, 180)) -> list[str]:
    """``n`` good JPEG frames named ``20200102-HHMMSS.jpg`` (one every 20 minutes)."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(start, start + n):
        minutes = 20 * i
        pid = f"202001{2 + minutes // 1440:02d}-{(minutes // 60) % 24:02d}{minutes % 60:02d}00"
        (folder / f"{pid}.jpg").write_bytes(jpeg_bytes(frame(100 + i, size)))
        ids.append(pid)
    return ids
