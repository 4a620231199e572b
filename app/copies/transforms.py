"""Synthetic copies of a photo: what re-uploading, resizing, cropping or a screenshot does.

Calibration makes copies of gallery images with ``TRAINING_KINDS`` and measures how
similar the model finds them; the evaluation also makes ``HELD_OUT_KINDS``, which
calibration never sees, to show how well the threshold carries over. Every copy is
seeded, so a calibration can be repeated exactly.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable

from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

Transform = Callable[[Image.Image, random.Random], Image.Image]

WORDS = ["SALE", "copyright", "@user", "2026", "photo", "shared via app", "wow", "LOOK"]


def crop(
    image: Image.Image, rng: random.Random, *, low: float = 0.60, high: float = 0.95
) -> Image.Image:
    """A crop keeping a random share of the area between ``low`` and ``high``."""
    area = rng.uniform(low, high)
    aspect = rng.uniform(0.8, 1.25)
    w, h = image.size
    cw = min(w, max(1, round(w * math.sqrt(area * aspect))))
    ch = min(h, max(1, round(w * h * area / cw)))
    left = rng.randint(0, w - cw)
    top = rng.randint(0, h - ch)
    return image.crop((left, top, left + cw, top + ch))


def resize(image: Image.Image, rng: random.Random) -> Image.Image:
    """Downscaled to 25-80% of each side (a thumbnail or a messenger's re-upload)."""
    scale = rng.uniform(0.25, 0.8)
    w, h = image.size
    return image.resize(
        (max(8, round(w * scale)), max(8, round(h * scale))),
        rng.choice([Image.Resampling.BILINEAR, Image.Resampling.BICUBIC]),
    )


def jpeg(image: Image.Image, rng: random.Random) -> Image.Image:
    """Re-compressed as JPEG at quality 30-90."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=rng.randint(30, 90))
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def colour(image: Image.Image, rng: random.Random) -> Image.Image:
    """Brightness, contrast and saturation each shifted by up to 30%."""
    out = ImageEnhance.Brightness(image).enhance(rng.uniform(0.7, 1.3))
    out = ImageEnhance.Contrast(out).enhance(rng.uniform(0.7, 1.3))
    return ImageEnhance.Color(out).enhance(rng.uniform(0.7, 1.3))


def rotate(image: Image.Image, rng: random.Random, *, degrees: float = 0.0) -> Image.Image:
    """A small rotation (2-5 degrees either way unless ``degrees`` is given), corners cut."""
    angle = degrees or rng.choice([-1, 1]) * rng.uniform(2.0, 5.0)
    turned = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False)
    w, h = image.size
    margin = math.sin(math.radians(abs(angle)))
    dx, dy = round(h * margin / 2), round(w * margin / 2)
    return turned.crop((dx, dy, max(dx + 1, w - dx), max(dy + 1, h - dy)))


def border(image: Image.Image, rng: random.Random) -> Image.Image:
    """Padding as in a screenshot or a letterboxed post: a plain border of 5-20%, more
    on top and bottom when it is a phone screen."""
    fill = rng.choice([(0, 0, 0), (255, 255, 255), (240, 240, 240), (30, 30, 30)])
    w, h = image.size
    side = round(w * rng.uniform(0.02, 0.1))
    top = round(h * rng.uniform(0.05, 0.2))
    bottom = round(h * rng.uniform(0.05, 0.2))
    return ImageOps.expand(image.convert("RGB"), border=(side, top, side, bottom), fill=fill)


def text(image: Image.Image, rng: random.Random) -> Image.Image:
    """A caption or watermark written over the picture."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    size = max(10, round(h * rng.uniform(0.06, 0.12)))
    font = ImageFont.load_default(size=size)
    words = " ".join(rng.sample(WORDS, 2))
    x = rng.randint(0, max(0, w // 2))
    y = rng.randint(0, max(0, h - size - 2))
    fill = rng.choice([(255, 255, 255), (0, 0, 0), (255, 40, 40)])
    draw.text(
        (x, y),
        words,
        fill=fill,
        font=font,
        stroke_width=1,
        stroke_fill=(0, 0, 0) if fill != (0, 0, 0) else (255, 255, 255),
    )
    return out


def flip(image: Image.Image, rng: random.Random) -> Image.Image:
    """Mirrored left to right (a selfie camera, a re-post); the same picture for a user."""
    return ImageOps.mirror(image)


def wide_crop(image: Image.Image, rng: random.Random) -> Image.Image:
    """Held out: a crop keeping only 35-60% of the area, tighter than calibration's."""
    return crop(image, rng, low=0.35, high=0.60)


def grayscale(image: Image.Image, rng: random.Random) -> Image.Image:
    """Held out: black and white."""
    return ImageOps.grayscale(image).convert("RGB")


def rotate10(image: Image.Image, rng: random.Random) -> Image.Image:
    """Held out: a rotation of 10 degrees, twice calibration's largest."""
    return rotate(image, rng, degrees=rng.choice([-10.0, 10.0]))


TRAINING_KINDS: dict[str, Transform] = {
    "crop": crop,
    "resize": resize,
    "jpeg": jpeg,
    "colour": colour,
    "rotate": rotate,
    "border": border,
    "text": text,
    "flip": flip,
}
HELD_OUT_KINDS: dict[str, Transform] = {
    "tight-crop": wide_crop,
    "grayscale": grayscale,
    "rotate10": rotate10,
}
ALL_KINDS = {**TRAINING_KINDS, **HELD_OUT_KINDS}


def make_copies(
    image: Image.Image,
    seed: int,
    kinds: dict[str, Transform] = TRAINING_KINDS,
) -> list[tuple[str, Image.Image]]:
    """One copy of ``image`` per kind, each drawn from its own seeded generator, with
    a JPEG re-encode after most (a copy found in the wild has been saved again)."""
    image = image.convert("RGB")
    out = []
    for n, (kind, transform) in enumerate(kinds.items()):
        rng = random.Random(seed * 1009 + n)
        copy = transform(image, rng)
        if kind != "jpeg" and rng.random() < 0.5:
            copy = jpeg(copy, rng)
        out.append((kind, copy.convert("RGB")))
    return out
