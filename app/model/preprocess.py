"""Turn decoded RGB images into the tensor a backbone expects.

The contract travels with the model: sizes, resampling, mean and std are read
from the model's image processor config. The common cases (resize the shortest
edge then centre-crop, or resize to a fixed size) run here on uint8 arrays,
several times faster than the generic HF processor; anything else falls back to
the processor itself, so every HF vision model still works.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """Resize (shortest edge or exact size), optional centre crop, rescale, normalise."""

    shortest_edge: int | None  # resize so the short side is this long...
    resize_to: tuple[int, int] | None  # ...or to exactly (height, width)
    crop: tuple[int, int] | None  # (height, width) centre crop, or None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resample: int = Image.Resampling.BICUBIC
    rescale: float = 1 / 255
    fallback: Any = None  # an HF image processor for layouts we do not handle

    @classmethod
    def default(cls) -> Preprocess:
        """DINOv2's recipe (resize 256, crop 224, ImageNet statistics, bicubic)."""
        return cls(shortest_edge=256, resize_to=None, crop=(224, 224))

    @classmethod
    def from_processor(cls, processor: Any) -> Preprocess:
        """Read the recipe from an HF image processor, or keep it as the fallback."""
        size = _as_dict(getattr(processor, "size", None))
        crop = _as_dict(getattr(processor, "crop_size", None))
        do_crop = bool(getattr(processor, "do_center_crop", False)) and crop is not None
        simple = (
            getattr(processor, "do_resize", True)
            and getattr(processor, "do_normalize", True)
            and getattr(processor, "do_rescale", True)
            and set(size or {}) in ({"shortest_edge"}, {"height", "width"})
            and (not do_crop or set(crop) == {"height", "width"})
            and not getattr(processor, "crop_pct", None)
        )
        if not simple:
            return cls(shortest_edge=None, resize_to=None, crop=None, fallback=processor)
        assert size is not None
        return cls(
            shortest_edge=size.get("shortest_edge"),
            resize_to=(size["height"], size["width"]) if "height" in size else None,
            crop=(crop["height"], crop["width"]) if do_crop and crop else None,
            mean=tuple(processor.image_mean),
            std=tuple(processor.image_std),
            resample=int(getattr(processor, "resample", Image.Resampling.BICUBIC)),
            rescale=float(getattr(processor, "rescale_factor", 1 / 255)),
        )

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the tensors this recipe makes."""
        if self.crop:
            return self.crop
        if self.resize_to:
            return self.resize_to
        if self.fallback is not None:
            crop = _as_dict(getattr(self.fallback, "crop_size", None)) or {}
            size = _as_dict(getattr(self.fallback, "size", None)) or {}
            side = crop.get("height") or size.get("height") or size.get("shortest_edge") or 224
            return (side, crop.get("width") or size.get("width") or side)
        edge = self.shortest_edge or 224
        return (edge, edge)

    def __call__(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """A float32 batch (n, 3, H, W) ready for the backbone."""
        return self.to_tensor(self.prepare(images))

    def prepare(self, images: Sequence[Image.Image]) -> np.ndarray:
        """The half of the recipe that any thread may run: no torch op.

        uint8 pixels (n, H, W, 3) resized and cropped; or, for a layout only the
        HF processor knows, its float32 output (n, 3, H, W) as numpy. A torch op
        would give the calling thread an OpenMP pool of its own, and live pools
        beyond the core count slow the model down (app/model/main_thread.py).
        """
        return self.finish([self.resize(im) for im in images])

    def finish(self, resized: Sequence[Image.Image]) -> np.ndarray:
        """``prepare`` for images already through ``resize`` (ingest shares that step
        with the thumbnail)."""
        if self.fallback is not None:
            out = self.fallback(images=list(resized), return_tensors="np")["pixel_values"]
            return np.ascontiguousarray(out, dtype=np.float32)
        return np.stack([np.asarray(self._crop(im), dtype=np.uint8) for im in resized])

    def to_tensor(self, prepared: np.ndarray) -> torch.Tensor:
        """Rescale and normalise what ``prepare`` made: run where the model runs."""
        batch = torch.from_numpy(prepared)
        if prepared.dtype != np.uint8:  # the fallback processor's output, already normalised
            return batch
        batch = batch.permute(0, 3, 1, 2).float()
        scale = torch.tensor(self.std).view(1, 3, 1, 1) / self.rescale
        shift = torch.tensor(self.mean).view(1, 3, 1, 1) / self.rescale
        return (batch - shift) / scale

    def resize(self, image: Image.Image) -> Image.Image:
        """The recipe's resize; the image as it is for a fallback processor."""
        if self.fallback is not None:
            return image
        if self.resize_to:
            height, width = self.resize_to
            return image.resize((width, height), self.resample)
        if self.shortest_edge:
            return image.resize(_short_side_size(image.size, self.shortest_edge), self.resample)
        return image

    def shrinks_keeping_aspect(self, image: Image.Image, minimum: int) -> bool:
        """Whether ``resize`` makes ``image`` smaller, with its aspect, and no side below
        ``minimum``: then its output can stand in for the original (thumbnails)."""
        edge = self.shortest_edge
        return (self.fallback is None and self.resize_to is None and edge is not None
                and minimum <= edge <= min(image.size))

    def _crop(self, image: Image.Image) -> Image.Image:
        return _centre_crop(image, self.crop) if self.crop else image


def _as_dict(value: Any) -> dict[str, int] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if v is not None}
    if not hasattr(value, "__dict__"):
        return None
    return {k: v for k, v in vars(value).items() if v is not None}


def _short_side_size(size: tuple[int, int], edge: int) -> tuple[int, int]:
    """(width, height) with the short side resized to ``edge``, as HF computes it."""
    width, height = size
    if width <= height:
        return edge, max(1, int(edge * height / width))
    return max(1, int(edge * width / height)), edge


def _centre_crop(image: Image.Image, crop: tuple[int, int]) -> Image.Image:
    """Centre crop; a side smaller than the crop is padded with black, as HF does."""
    crop_h, crop_w = crop
    width, height = image.size
    if width < crop_w or height < crop_h:
        canvas = Image.new("RGB", (max(width, crop_w), max(height, crop_h)))
        canvas.paste(image, ((canvas.width - width) // 2, (canvas.height - height) // 2))
        image, (width, height) = canvas, canvas.size
    top = (height - crop_h) // 2
    left = (width - crop_w) // 2
    return image.crop((left, top, left + crop_w, top + crop_h))
