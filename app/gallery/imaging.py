"""Decoding, validation and normalisation of images, and their content keys.

Every image that reaches the encoder, whether an upload, a gallery file or a
training sample, goes through :func:`decode`, so index time and query time see
identical pixels.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from app.config import Config
from app.exceptions import ImageTooLarge, InvalidImage, UnsupportedImage

# The formats we accept, as Pillow names them, and the extension we store them under.
FORMATS: dict[str, str] = {
    "JPEG": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tiff",
}
FORMAT_NAMES = "PNG, JPEG, WebP, GIF, BMP, TIFF"
MIME_TYPES: dict[str, str] = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
}
# JPEGs are decoded at a reduced DCT scale when both sides stay at least this
# large: the encoder and the thumbnails never need more, and a 24 MP photo then
# decodes several times faster.
DRAFT_MIN_SIDE = 512
THUMB_SIZE = 256
# Thumbnails are JPEG: made on the ingest hot path, where CPU is taken from the
# model on a small server, and JPEG encodes several times faster than WebP for
# somewhat larger files (docs/performance.md, "Ingest").
THUMB_MIME = "image/jpeg"
THUMB_QUALITY = 82

# Never let Pillow load a truncated file as if it were whole.
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class DecodedImage:
    """An image ready for the encoder, with what we learnt about its file."""

    image: Image.Image  # RGB, EXIF orientation applied
    format: str  # Pillow's format name, one of FORMATS
    width: int  # of the original file, before any draft scaling
    height: int

    @property
    def extension(self) -> str:
        return FORMATS[self.format]


def content_hash(data: bytes) -> str:
    """The sha256 of the file's bytes: the identity of an image everywhere."""
    return hashlib.sha256(data).hexdigest()


def decode(data: bytes, *, max_pixels: int = Config.MAX_IMAGE_PIXELS) -> DecodedImage:
    """Decode file bytes into an RGB image, or raise a clear domain error.

    The pixel count is checked from the header, before any pixel is decoded, so
    a decompression bomb costs nothing. Animated files give their first frame.
    """
    if not data:
        raise InvalidImage("The file is empty.")
    image = _open(data)
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"The image is {width}x{height} pixels; the limit is {max_pixels:,} pixels."
        )
    if image.format == "JPEG" and min(width, height) >= 2 * DRAFT_MIN_SIDE:
        scale = min(width, height) // DRAFT_MIN_SIDE
        image.draft("RGB", (width // scale, height // scale))
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(
            "The image file is truncated or corrupt; we could not read its pixels."
        ) from exc
    return DecodedImage(to_rgb(_oriented(image)), image.format, width, height)


def _open(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # e.g. "Corrupt EXIF data"
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=list(FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedImage(
            f"This file is not an image we can read ({FORMAT_NAMES})."
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage("The image file is corrupt; we could not read its header.") from exc


def _oriented(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a corrupt EXIF block is ignored, not fatal."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Corrupt EXIF data" is not the user's problem
            return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - Pillow raises many types on broken EXIF
        return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is flattened onto white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit grey: scale to 8 bits instead of clipping at 255.
        image = image.convert("I").point(lambda v: v / 256).convert("L")
    elif image.mode == "F":
        image = image.convert("L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def thumbnail(image: Image.Image, size: int = THUMB_SIZE) -> bytes:
    """A JPEG thumbnail that fits in size x size, made once at ingest.

    ``image`` may be a smaller copy of the original that still covers the box
    (ingest passes the encoder's resized input), which saves a resize.
    """
    thumb = image.copy()
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    thumb.save(out, format="JPEG", quality=THUMB_QUALITY)
    return out.getvalue()
