"""Decoding: every mode becomes RGB, broken files get clear errors, bombs are refused early."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from app.exceptions import ImageTooLarge, InvalidImage, UnsupportedImage
from app.gallery import imaging


def encode(image: Image.Image, fmt: str, **params) -> bytes:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def test_a_jpeg_decodes_to_rgb_with_its_real_size(photos: dict[str, bytes]) -> None:
    decoded = imaging.decode(photos["coffee"])
    assert decoded.image.mode == "RGB"
    assert (decoded.width, decoded.height) == (600, 400)
    assert decoded.extension == "jpg"


@pytest.mark.parametrize("mode", ["L", "1", "P", "CMYK", "I;16", "LA", "RGBA", "I", "F"])
def test_every_pixel_mode_becomes_rgb(mode: str) -> None:
    fmt = "TIFF" if mode in ("CMYK", "I;16", "I", "F") else "PNG"
    image = Image.new("RGB", (40, 30), (200, 100, 50)).convert(mode)
    decoded = imaging.decode(encode(image, fmt))
    assert decoded.image.mode == "RGB"
    assert decoded.image.size == (40, 30)


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    image = Image.new("I;16", (8, 8), 32768)  # mid-grey in 16 bits
    pixel = imaging.decode(encode(image, "PNG")).image.getpixel((0, 0))
    assert 120 <= pixel[0] <= 136


def test_transparency_is_flattened_onto_white() -> None:
    image = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    assert imaging.decode(encode(image, "PNG")).image.getpixel((5, 5)) == (255, 255, 255)


def test_palette_with_transparency_becomes_rgb() -> None:
    image = Image.new("P", (10, 10), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.info["transparency"] = 0
    decoded = imaging.decode(encode(image, "PNG", transparency=0))
    assert decoded.image.getpixel((0, 0)) == (255, 0, 0)


def test_an_animation_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in [(255, 0, 0), (0, 0, 255)]]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    red, green, blue = imaging.decode(data).image.getpixel((8, 8))
    assert red > 200 and blue < 50


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (60, 20), (0, 128, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    decoded = imaging.decode(encode(image, "JPEG", exif=exif.tobytes()))
    assert decoded.image.size == (20, 60)


def test_a_corrupt_exif_block_is_ignored() -> None:
    data = encode(Image.new("RGB", (20, 20)), "JPEG", exif=b"Exif\x00\x00II*\x00\xff\xff\xff\xff")
    assert imaging.decode(data).image.size == (20, 20)


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(InvalidImage, match="empty"):
        imaging.decode(b"")


@pytest.mark.parametrize("data", [b"hello world", b"<html><body>hi</body></html>",
                                  b"%PDF-1.4\n", b"PK\x03\x04zip", b"\x7fELF\x02\x01",
                                  b'<svg xmlns="http://www.w3.org/2000/svg"/>'])
def test_files_that_are_not_images_are_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedImage, match="PNG, JPEG"):
        imaging.decode(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_truncated_file_is_refused(fmt: str, photos: dict[str, bytes]) -> None:
    data = encode(Image.open(io.BytesIO(photos["coffee"])), fmt)
    with pytest.raises(InvalidImage):
        imaging.decode(data[: len(data) // 2])


def png_header(width: int, height: int) -> bytes:
    """A valid PNG that claims width x height pixels but carries almost none."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) \
        + chunk(b"IEND", b"")


def test_a_pixel_bomb_is_refused_from_its_header() -> None:
    data = png_header(30000, 30000)
    assert len(data) < 200
    with pytest.raises(ImageTooLarge, match="30000x30000|pixels"):
        imaging.decode(data, max_pixels=50_000_000)


def test_the_pixel_limit_is_configurable() -> None:
    with pytest.raises(ImageTooLarge):
        imaging.decode(encode(Image.new("RGB", (100, 100)), "PNG"), max_pixels=9_999)


def test_large_jpegs_are_decoded_at_reduced_scale_with_their_real_size() -> None:
    data = encode(Image.new("RGB", (4000, 3000), (10, 20, 30)), "JPEG")
    decoded = imaging.decode(data)
    assert (decoded.width, decoded.height) == (4000, 3000)
    assert min(decoded.image.size) >= imaging.DRAFT_MIN_SIDE
    assert decoded.image.size[0] < 4000


def test_tiny_and_panorama_images_decode() -> None:
    assert imaging.decode(encode(Image.new("RGB", (1, 1)), "PNG")).image.size == (1, 1)
    assert imaging.decode(encode(Image.new("RGB", (10000, 100)), "PNG")).image.size == (10000, 100)


def test_thumbnails_are_small_jpegs(photos: dict[str, bytes]) -> None:
    thumb = Image.open(io.BytesIO(imaging.thumbnail(imaging.decode(photos["coffee"]).image)))
    assert thumb.format == "JPEG" and imaging.THUMB_MIME == "image/jpeg"
    assert max(thumb.size) == imaging.THUMB_SIZE

