"""Training augmentations that end exactly where the app's preprocessing ends.

The eval side is ``app.model.preprocess.Preprocess`` itself; the train side crops,
flips and jitters, then resizes to the same input size and normalises with the
same mean and std, so the model sees the same value range at both times.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch
from PIL import Image
from torchvision.transforms import v2

from app.model.preprocess import Preprocess
from trainer.data import load_image


def make_train_transform(
    preprocess: Preprocess,
    *,
    size: tuple[int, int] | None = None,
    scale: tuple[float, float] = (0.25, 1.0),
    jitter: float = 0.3,
) -> Callable[[Image.Image], torch.Tensor]:
    """Random resized crop, horizontal flip, brightness/contrast/saturation jitter.

    Hue is left alone: many products differ mainly by colour (a red apple and
    a green one), and a hue shift would teach the model to ignore that.
    """
    mean, std = _normalisation(preprocess)
    return v2.Compose([
        v2.PILToTensor(),
        v2.RandomResizedCrop(size or preprocess.input_size, scale=scale, antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter * 2 / 3),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean, std),
    ])


def _normalisation(preprocess: Preprocess) -> tuple[list[float], list[float]]:
    """Mean and std as the preprocessing applies them, for values scaled to [0, 1]."""
    scale = preprocess.rescale * 255.0  # 1.0 for the usual rescale of 1/255
    return ([m / scale for m in preprocess.mean], [s / scale for s in preprocess.std])


class ImageCache:
    """Decoded, downsized images kept in memory while they fit in ``budget_mb``.

    Decoding a JPEG costs more than augmenting it, and every epoch reads every
    training image again: keeping the pixels (short side ``side``) avoids that.
    """

    def __init__(self, side: int, budget_mb: int = 3072) -> None:
        self.side = side
        self.budget = budget_mb * 1024 * 1024
        self.used = 0
        self.images: dict[str, Image.Image] = {}
        self.lock = threading.Lock()

    def get(self, path: str) -> Image.Image:
        image = self.images.get(path)
        if image is not None:
            return image
        image = shrink(load_image(path), self.side)
        size = image.width * image.height * 3
        with self.lock:
            if self.used + size <= self.budget:
                self.images[path] = image
                self.used += size
        return image


def shrink(image: Image.Image, side: int) -> Image.Image:
    """Resize so the short side is ``side`` (never enlarges)."""
    short = min(image.size)
    if short <= side:
        return image
    factor = side / short
    return image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))),
                        Image.Resampling.BICUBIC)
