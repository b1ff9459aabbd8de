"""Decoding one picture: sizes, colour modes, orientation, and every rejection reason."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pytest
from PIL import Image, ImageFile, JpegImagePlugin

from iss.data import images
from iss.data.images import PictureError, decode_picture, to_rgb

from .picture_files import bomb_png, frame, jpeg_bytes, two_tone


def test_jpeg_decodes_to_input_and_thumbnail_sizes(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_bytes(Image.new("RGB", (1280, 720), (200, 40, 10))))
    picture = decode_picture(path)
    assert picture.input.shape == (27, 48, 3) and picture.input.dtype == np.uint8
    assert picture.thumb.shape == (54, 96, 3) and picture.thumb.dtype == np.uint8
    assert (picture.width, picture.height) == (1280, 720)
    assert np.abs(picture.thumb.reshape(-1, 3).mean(0) - (200, 40, 10)).max() < 3
    assert np.abs(picture.input.astype(int).mean((0, 1)) - picture.thumb.astype(int).mean((0, 1))).max() < 1


def _spy_decoded_sizes(monkeypatch) -> dict[str, list]:
    """Record the size each decoder hands back: libjpeg-turbo (fast path) and PIL's draft."""
    sizes = {"fast": [], "pil": []}
    original_decode, original_draft = images.simplejpeg.decode_jpeg, JpegImagePlugin.JpegImageFile.draft

    def spy_decode(*args, **kwargs):
        pixels = original_decode(*args, **kwargs)
        sizes["fast"].append((pixels.shape[1], pixels.shape[0]))
        return pixels

    def spy_draft(self, mode, size):
        result = original_draft(self, mode, size)
        sizes["pil"].append(self.size)
        return result

    monkeypatch.setattr(images.simplejpeg, "decode_jpeg", spy_decode)
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy_draft)
    return sizes


def test_plain_jpeg_is_decoded_at_one_eighth_scale_by_the_fast_path(tmp_path, monkeypatch):
    """A 1280x720 camera frame is decoded by libjpeg-turbo straight to 160x90, not to full size."""
    sizes = _spy_decoded_sizes(monkeypatch)
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_bytes(frame(0, (1280, 720))))
    picture = decode_picture(path)
    assert sizes == {"fast": [(160, 90)], "pil": []}
    assert picture.thumb.shape == (54, 96, 3)


def test_jpeg_with_exif_is_draft_decoded_by_pil(tmp_path, monkeypatch):
    """EXIF (orientation, dates) needs PIL: the picture is still decoded at 1/8 scale, by PIL's draft."""
    sizes = _spy_decoded_sizes(monkeypatch)
    exif = Image.Exif()
    exif[0x0112] = 1
    buffer = io.BytesIO()
    frame(0, (1280, 720)).save(buffer, "JPEG", exif=exif)
    picture = decode_picture(io.BytesIO(buffer.getvalue()))
    assert sizes == {"fast": [], "pil": [(160, 90)]}
    assert picture.thumb.shape == (54, 96, 3)


def test_both_decoders_give_the_same_pixels(monkeypatch):
    data = jpeg_bytes(frame(3, (1280, 720)))
    fast = decode_picture(io.BytesIO(data))
    exif = Image.Exif()
    exif[0x0112] = 1
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buffer, "JPEG", exif=exif, quality=100)
    assert images._jpeg_has_exif(buffer.getvalue()) and not images._jpeg_has_exif(data)
    monkeypatch.setattr(images, "_decode_plain_jpeg", lambda *args: None)  # every picture through PIL
    by_pil = decode_picture(io.BytesIO(data))
    assert np.abs(fast.thumb.astype(int) - by_pil.thumb.astype(int)).max() <= 2
    assert np.abs(fast.input.astype(int) - by_pil.input.astype(int)).max() <= 2


def test_other_sizes_and_file_objects():
    data = jpeg_bytes(frame(1, (640, 480)))
    picture = decode_picture(io.BytesIO(data), input_size=(32, 24), thumb_size=(100, 60))
    assert picture.input.shape == (24, 32, 3) and picture.thumb.shape == (60, 100, 3)
    assert (picture.width, picture.height) == (640, 480)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "1", "LA", "I", "F"])
def test_every_mode_becomes_rgb(mode):
    image = frame(2).convert(mode) if mode not in ("I", "F") else frame(2).convert("L").convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, "TIFF")
    picture = decode_picture(io.BytesIO(buffer.getvalue()))
    assert picture.input.shape == (27, 48, 3)
    reference = np.asarray(frame(2).convert("L").resize((96, 54)))
    if mode in ("L", "LA", "I", "F"):  # same gray levels
        assert np.abs(picture.thumb[..., 0].astype(int) - reference).mean() < 4
        assert (picture.thumb[..., 0] == picture.thumb[..., 1]).all()


def test_rgba_is_composited_on_black():
    image = Image.new("RGBA", (200, 100), (255, 0, 0, 255))
    image.paste(Image.new("RGBA", (100, 100), (0, 255, 0, 0)), (100, 0))  # right half transparent
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    thumb = decode_picture(io.BytesIO(buffer.getvalue())).thumb
    assert (thumb[:, :40] == (255, 0, 0)).all()
    assert (thumb[:, 56:] == 0).all()


def test_16_bit_grayscale_is_scaled_not_clipped():
    values = np.full((90, 160), 32896, dtype=np.uint16)  # = 128 * 257
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, "PNG")
    assert Image.open(io.BytesIO(buffer.getvalue())).mode.startswith("I")
    thumb = decode_picture(io.BytesIO(buffer.getvalue())).thumb
    assert np.abs(thumb.astype(int) - 128).max() <= 1


def test_cmyk_jpeg_colours():
    data = jpeg_bytes(Image.new("CMYK", (320, 180), (0, 255, 255, 0)))  # pure red in CMYK
    thumb = decode_picture(io.BytesIO(data)).thumb
    r, g, b = thumb.reshape(-1, 3).mean(0)
    assert r > 200 and g < 60 and b < 60


def test_exif_orientation_is_applied():
    """Orientation 6 means 'rotate 90 degrees clockwise to display': the top half goes right."""
    exif = Image.Exif()
    exif[0x0112] = 6
    data = jpeg_bytes(two_tone((640, 360), top=(255, 0, 0), bottom=(0, 0, 255)), exif=exif)
    picture = decode_picture(io.BytesIO(data))
    assert (picture.width, picture.height) == (360, 640)
    thumb = picture.thumb.astype(int)
    left, right = thumb[:, :40].reshape(-1, 3).mean(0), thumb[:, 56:].reshape(-1, 3).mean(0)
    assert right[0] > 200 and right[2] < 60  # red on the right
    assert left[2] > 200 and left[0] < 60  # blue on the left


def test_crop_keeps_the_aspect_ratio():
    image = Image.new("RGB", (400, 300), (0, 0, 255))  # 4:3: blue, with red bands top and bottom
    image.paste(Image.new("RGB", (400, 38), (255, 0, 0)), (0, 0))
    image.paste(Image.new("RGB", (400, 38), (255, 0, 0)), (0, 262))
    data = jpeg_bytes(image, quality=95)
    stretched = decode_picture(io.BytesIO(data)).thumb.astype(int)
    cropped = decode_picture(io.BytesIO(data), fit="crop").thumb.astype(int)
    assert stretched[0, :, 0].mean() > 200  # the red band is still there
    assert cropped[1:-1, :, 0].max() < 80 and cropped[1:-1, :, 2].min() > 180  # 16:9 centre: only blue


def test_exif_datetime_is_read_when_asked():
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2019:05:06 07:08:09"
    data = jpeg_bytes(frame(3), exif=exif)
    assert decode_picture(io.BytesIO(data), read_exif_datetime=True).exif_datetime == dt.datetime(2019, 5, 6, 7, 8, 9)
    assert decode_picture(io.BytesIO(data)).exif_datetime is None


def _reason(source, **kwargs) -> PictureError:
    with pytest.raises(PictureError) as info:
        decode_picture(source, **kwargs)
    return info.value


def test_empty_file(tmp_path):
    (tmp_path / "e.jpg").write_bytes(b"")
    assert _reason(tmp_path / "e.jpg").reason == "empty"
    assert _reason(io.BytesIO(b"")).reason == "empty"


def test_truncated_jpeg():
    data = jpeg_bytes(frame(4, (640, 360)))
    error = _reason(io.BytesIO(data[: len(data) * 2 // 3]))
    assert error.reason == "truncated" and "truncated" in error.detail


def test_text_file_is_not_an_image():
    assert _reason(io.BytesIO(b"hello, I am a text file\n" * 10)).reason == "not_image"


def test_decompression_bomb_rejected_from_the_header_without_decoding(monkeypatch):
    def no_decoding(self, *args, **kwargs):
        raise AssertionError("a picture over the limit must not be decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    error = _reason(io.BytesIO(bomb_png(20000, 20000)))
    assert error.reason == "too_large"
    # Under PIL's own limit but over ours:
    error = _reason(io.BytesIO(bomb_png(3000, 2000)), max_pixels=1_000_000)
    assert error.reason == "too_large" and "3000x2000" in error.detail and "ingest.max_pixels" in error.detail


def test_corrupt_data_after_a_valid_header():
    buffer = io.BytesIO()
    frame(5, (640, 360)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    start = data.index(b"IDAT") + 4 + 50
    data[start:start + 400] = bytes(range(200)) * 2  # garbage inside the compressed stream
    error = _reason(io.BytesIO(bytes(data)))
    assert error.reason == "corrupt" and "broken data stream" in error.detail


def test_unreadable_path(tmp_path):
    error = _reason(tmp_path / "missing.jpg")
    assert error.reason == "unreadable"


def test_bad_fit_is_a_value_error():
    with pytest.raises(ValueError, match="fit"):
        decode_picture(io.BytesIO(jpeg_bytes(frame(0))), fit="squash")


def test_to_rgb_keeps_rgb_untouched():
    image = frame(0)
    assert to_rgb(image) is image
