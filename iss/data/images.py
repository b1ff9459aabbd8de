"""The one picture decoder: every use of a picture file (ingest, posters, search uploads) decodes it here.

:func:`open_picture` turns a file into an upright 8-bit RGB picture (EXIF orientation applied,
transparency composited on black, 16-bit scaled, any colour mode converted), decoded at a reduced
scale when a smaller size is enough; :func:`decode_picture` resizes it to the model input size
and the thumbnail size for the ingest cache and search queries. So the thumbnail, the poster
and a query of the same file show the same pixels.

Every picture of a collection is decoded exactly once, at ingest (:mod:`iss.data.ingest`), and
stored in the ingest cache (:class:`iss.data.cache.ImageCache`). Decoding is made fast by
asking libjpeg to decode at a reduced scale (a 1280x720 JPEG decodes straight to 160x90,
~4x faster than a full decode) and only then resizing to the two target sizes. Plain
JPEGs (RGB or grayscale, no EXIF block: camera frames) take the fastest path, libjpeg-turbo
through ``simplejpeg``, which parses the header in C and hands back a NumPy array (~8% less
CPU per frame than PIL's ``draft``); every other picture, and any JPEG that path refuses,
goes through PIL, which also decides the rejection reason. It is made robust by checking the header before decoding anything
(decompression bombs), converting every colour mode to RGB, applying the EXIF orientation,
and turning every failure into a :class:`PictureError` with a short machine-readable
``reason`` that the ingest records in ``pictures_rejected``.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import simplejpeg
from PIL import Image, UnidentifiedImageError

from iss.data.ids import parse_exif_datetime
from iss.data.listing import HEIF_HINT, heif_plugin

# PIL's own bomb limit, and ours by default (``ingest.max_pixels``): ~ a 9459x9459 picture.
DEFAULT_MAX_PIXELS = 89_478_485

# Reasons a picture is rejected (the ``pictures_rejected.reason`` column).
REASONS = {
    "empty": "zero-byte file",
    "truncated": "the file ends before the picture does (interrupted copy or download)",
    "not_image": "not a picture format PIL can read",
    "too_large": "more pixels than ingest.max_pixels (decompression-bomb limit)",
    "corrupt": "the picture data cannot be decoded",
    "unreadable": "the file cannot be read (permissions, vanished, I/O error)",
    "unsupported_format": "a picture format the installed Pillow cannot read",
}

_EXIF_ORIENTATION = 0x0112
_EXIF_IFD = 0x8769
_EXIF_DATETIME_ORIGINAL = 0x9003
_EXIF_DATETIME = 0x0132
# Orientation -> transpose to apply (EXIF spec; same table as ImageOps.exif_transpose).
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_RESAMPLE = Image.Resampling.BILINEAR  # antialiased when shrinking; 2x cheaper than LANCZOS at 160x90

# Our max_pixels check on the header replaces PIL's warning (its hard error above 2x still applies).
warnings.simplefilter("ignore", Image.DecompressionBombWarning)


class PictureError(Exception):
    """A picture that cannot be ingested.

    Attributes
    ----------
    reason : str
        One of :data:`REASONS` (``empty``, ``truncated``, ``not_image``, ``too_large``, ...).
    detail : str
        What exactly was found, for the ``pictures_rejected.detail`` column.
    """

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class DecodedPicture:
    """A decoded picture.

    Attributes
    ----------
    input : uint8 array, shape (h, w, 3)
        At the model input size (27, 48, 3 by default).
    thumb : uint8 array, shape (th, tw, 3)
        At the thumbnail size (54, 96, 3 by default).
    width, height : int
        Full size of the picture as displayed (after the EXIF orientation).
    exif_datetime : datetime or None
        EXIF DateTimeOriginal (else DateTime), only when asked for.
    """

    input: np.ndarray
    thumb: np.ndarray
    width: int
    height: int
    exif_datetime: object = None


def _exif_orientation(image: Image.Image) -> int:
    # Parsing EXIF costs ~0.1 ms; skip it for the (common) pictures that have none.
    if "exif" not in image.info and image.format not in ("TIFF", "MPO"):
        return 1
    try:
        value = image.getexif().get(_EXIF_ORIENTATION, 1)
        return int(value) if int(value) in _ORIENTATION_TRANSPOSE else 1
    except Exception:  # noqa: BLE001 - a broken EXIF block must not reject a readable picture
        return 1


def _exif_datetime(image: Image.Image):
    try:
        exif = image.getexif()
        value = exif.get_ifd(_EXIF_IFD).get(_EXIF_DATETIME_ORIGINAL) or exif.get(_EXIF_DATETIME)
    except Exception:  # noqa: BLE001
        return None
    return parse_exif_datetime(value)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode as 8-bit RGB.

    Transparent pixels are composited on black (the ISS background); 16- and 32-bit
    grayscale is scaled to 8 bits rather than clipped (PIL's ``convert`` would clip).
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
        if mode == "RGB":
            return image
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (0, 0, 0))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if mode.startswith("I") or mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16"):
            values = values / 257.0
        elif mode == "I" and values.max(initial=0) > 255:
            values = values * (255.0 / max(65535.0, values.max()))
        gray = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
        return gray.convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def _crop_box(size: tuple[int, int], target: tuple[int, int]) -> tuple[float, float, float, float]:
    """Centred box of ``size`` with the aspect ratio of ``target``."""
    width, height = size
    scale = min(width / target[0], height / target[1])
    box_w, box_h = target[0] * scale, target[1] * scale
    left, top = (width - box_w) / 2, (height - box_h) / 2
    return (left, top, left + box_w, top + box_h)


def _resize(image: Image.Image, size: tuple[int, int], fit: str) -> Image.Image:
    if image.size == size:
        return image
    box = _crop_box(image.size, size) if fit == "crop" else None
    return image.resize(size, _RESAMPLE, box=box, reducing_gap=3.0)


def _open(source: str | os.PathLike | BinaryIO) -> tuple[BinaryIO, bool]:
    """The file object to read, and whether we opened it (so must close it)."""
    if isinstance(source, (str, os.PathLike)):
        try:
            return open(source, "rb"), True
        except OSError as exc:
            raise PictureError("unreadable", f"{exc.strerror or exc}") from exc
    return source, False


def decode_picture(source: str | os.PathLike | BinaryIO, input_size: Sequence[int] = (48, 27),
                   thumb_size: Sequence[int] = (96, 54), max_pixels: int = DEFAULT_MAX_PIXELS,
                   fit: str = "stretch", read_exif_datetime: bool = False) -> DecodedPicture:
    """Decode a picture to the model input size and the thumbnail size.

    Parameters
    ----------
    source : path or binary file object
    input_size : (int, int), default=(48, 27)
        ``(width, height)`` of the model input.
    thumb_size : (int, int), default=(96, 54)
        ``(width, height)`` of the thumbnail.
    max_pixels : int, default=89478485
        Pictures whose header announces more pixels are rejected before any decoding.
    fit : {"stretch", "crop"}, default="stretch"
        ``stretch`` resizes the whole picture (aspect ratio not kept); ``crop`` keeps the
        aspect ratio by cropping the centre.
    read_exif_datetime : bool, default=False
        Also read the EXIF DateTimeOriginal (costs ~0.1 ms, so only when needed).

    Returns
    -------
    DecodedPicture
        ``input`` uint8 (input_h, input_w, 3), ``thumb`` uint8 (thumb_h, thumb_w, 3).

    Raises
    ------
    PictureError
        With ``reason`` in ``empty | truncated | not_image | too_large | corrupt | unreadable``.
    """
    if fit not in ("stretch", "crop"):
        raise ValueError(f"fit={fit!r}: expected 'stretch' or 'crop'")
    input_size, thumb_size = (int(input_size[0]), int(input_size[1])), (int(thumb_size[0]), int(thumb_size[1]))
    file, owned = _open(source)
    try:
        return _decode(file, input_size, thumb_size, max_pixels, fit, read_exif_datetime)
    finally:
        if owned:
            file.close()


def _is_empty(file: BinaryIO) -> bool:
    try:
        return os.fstat(file.fileno()).st_size == 0
    except (AttributeError, OSError, io.UnsupportedOperation):  # an in-memory file
        position = file.tell()
        end = file.seek(0, io.SEEK_END)
        file.seek(position)
        return end == 0


def _jpeg_has_exif(data: bytes) -> bool:
    """Whether a JPEG has an APP1 ``Exif`` segment, found by walking the markers before the image data."""
    position = 2  # after SOI
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xDA or not 0xE0 <= marker <= 0xEF and marker not in (0xDB, 0xC4, 0xDD, 0xFE):
            return False  # start of scan or of frame: no more application segments
        length = int.from_bytes(data[position + 2:position + 4], "big")
        if marker == 0xE1 and data[position + 4:position + 10] == b"Exif\0\0":
            return True
        position += 2 + length
    return False


def _decode_plain_jpeg(data: bytes, input_size, thumb_size, max_pixels, fit) -> DecodedPicture | None:
    """The fast path for JPEGs without EXIF in RGB or grayscale; None when the picture needs PIL.

    libjpeg-turbo picks the smallest scale (n/8) that still covers the thumbnail. A file this
    path refuses for any reason (truncated, corrupt, CMYK, EXIF orientation, over the pixel
    limit) is left to PIL, which rejects it with the right reason or decodes it.
    """
    if data[:3] != b"\xff\xd8\xff" or _jpeg_has_exif(data):
        return None
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
        if colorspace not in ("YCbCr", "Gray", "RGB") or width * height > max_pixels:
            return None
        want = (max(thumb_size[0], input_size[0]), max(thumb_size[1], input_size[1]))
        pixels = simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=want[0], min_height=want[1], strict=True)
    except ValueError:  # libjpeg's warnings too (strict): "Premature end of JPEG file", ...
        return None
    return _resized(Image.fromarray(pixels), input_size, thumb_size, fit, width, height, None)


def _resized(rgb: Image.Image, input_size, thumb_size, fit, width, height, exif_datetime) -> DecodedPicture:
    """The decoded picture at the thumbnail and input sizes."""
    thumb = _resize(rgb, thumb_size, fit)
    factor = thumb_size[0] // input_size[0]
    if factor >= 1 and thumb_size == (input_size[0] * factor, input_size[1] * factor):
        small = thumb.reduce(factor) if factor > 1 else thumb  # box filter on 4x fewer pixels
    else:
        small = _resize(rgb, input_size, fit)
    return DecodedPicture(input=np.asarray(small, dtype=np.uint8), thumb=np.asarray(thumb, dtype=np.uint8),
                          width=width, height=height, exif_datetime=exif_datetime)


def _read(file: BinaryIO) -> bytes:
    if _is_empty(file):
        raise PictureError("empty", "the file has 0 bytes")
    try:
        return file.read()
    except OSError as exc:
        raise PictureError("unreadable", f"{exc.strerror or exc}") from exc


def _decode(file: BinaryIO, input_size, thumb_size, max_pixels, fit, read_exif_datetime) -> DecodedPicture:
    data = _read(file)
    # a JPEG the fast path accepts has no EXIF block, so no EXIF date either
    decoded = _decode_plain_jpeg(data, input_size, thumb_size, max_pixels, fit)
    if decoded is not None:
        return decoded
    # libjpeg decodes at 1/2, 1/4 or 1/8 scale: the largest that still covers both sizes
    opened = _open_bytes(data, (max(thumb_size[0], input_size[0]), max(thumb_size[1], input_size[1])), max_pixels,
                         read_exif_datetime)
    return _resized(opened.image, input_size, thumb_size, fit, opened.width, opened.height, opened.exif_datetime)


@dataclass
class OpenedPicture:
    """A picture decoded by :func:`open_picture`.

    Attributes
    ----------
    image : PIL.Image.Image
        Upright 8-bit RGB, at least the ``min_size`` asked for (JPEGs decode at 1/2..1/8 scale when
        that is enough), else at full size.
    width, height : int
        Full size of the picture as displayed (after the EXIF orientation).
    exif_datetime : datetime or None
        EXIF DateTimeOriginal (else DateTime), only when asked for.
    """

    image: Image.Image
    width: int
    height: int
    exif_datetime: object = None


MinSize = tuple[int, int] | Callable[[int, int], tuple[int, int]] | None


def open_picture(source: str | os.PathLike | BinaryIO, min_size: MinSize = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, read_exif_datetime: bool = False) -> OpenedPicture:
    """Decode a picture file to an upright 8-bit RGB image: the one decoder of the project.

    Parameters
    ----------
    source : path or binary file object
        Read from its current position.
    min_size : (int, int) or callable, optional
        ``(width, height)``, in displayed orientation, that the decoded image must cover; or a
        function of the displayed full size ``(width, height)`` returning it. JPEGs are then
        decoded at the smallest of 1/1, 1/2, 1/4, 1/8 scale that still covers it. None: full size.
    max_pixels : int, default=89478485
        Pictures whose header announces more pixels are rejected before any decoding.
    read_exif_datetime : bool, default=False

    Returns
    -------
    OpenedPicture

    Raises
    ------
    PictureError
        With ``reason`` in ``empty | truncated | not_image | too_large | corrupt | unreadable |
        unsupported_format``.
    """
    file, owned = _open(source)
    try:
        data = _read(file)
    finally:
        if owned:
            file.close()
    return _open_bytes(data, min_size, max_pixels, read_exif_datetime)


def _is_heif(data: bytes) -> bool:
    """An ISO base media file (``ftyp`` box) that is not AVIF (which Pillow reads itself): HEIC/HEIF."""
    return data[4:8] == b"ftyp" and data[8:12] not in (b"avif", b"avis")


def _open_bytes(data: bytes, min_size: MinSize, max_pixels: int, read_exif_datetime: bool) -> OpenedPicture:
    heif = _is_heif(data) and heif_plugin()  # registers the optional HEIF opener only when one is met
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise PictureError("too_large", str(exc)) from exc
    except UnidentifiedImageError as exc:
        if _is_heif(data) and not heif:
            raise PictureError("unsupported_format", HEIF_HINT) from exc
        raise PictureError("not_image", "not a picture format PIL recognises") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise PictureError("corrupt", f"header: {exc}") from exc
    # no `with image:` — the bytes are in memory, and closing would drop the decoded pixels
    width, height = image.size
    if width <= 0 or height <= 0:
        raise PictureError("corrupt", f"header gives a {width}x{height} picture")
    # The bomb check uses the header only: nothing has been decoded yet.
    if width * height > max_pixels:
        raise PictureError("too_large", f"{width}x{height} = {width * height} pixels, more than "
                                        f"ingest.max_pixels={max_pixels}")
    orientation = _exif_orientation(image)
    rotated = orientation >= 5  # 5..8 swap width and height
    shown = (height, width) if rotated else (width, height)
    exif_datetime = _exif_datetime(image) if read_exif_datetime else None
    want = min_size(*shown) if callable(min_size) else min_size
    if want is not None and image.format == "JPEG":
        image.draft("RGB", (int(want[1]), int(want[0])) if rotated else (int(want[0]), int(want[1])))
    try:
        image.load()
    except OSError as exc:
        reason = "truncated" if "truncated" in str(exc) else "corrupt"
        raise PictureError(reason, str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - PIL plugins raise many types on bad data
        raise PictureError("corrupt", f"{type(exc).__name__}: {exc}") from exc
    try:
        rgb = to_rgb(image)
    except Exception as exc:  # noqa: BLE001
        raise PictureError("corrupt", f"cannot convert mode {image.mode} to RGB: {exc}") from exc
    if orientation != 1:
        rgb = rgb.transpose(_ORIENTATION_TRANSPOSE[orientation])
    return OpenedPicture(rgb, shown[0], shown[1], exif_datetime)
