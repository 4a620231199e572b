"""Training batches: augmented pixels, or cached activations of a frozen backbone part.

Both yield ``(inputs, labels)`` for one P x K batch. Pixels are prepared in a
background thread one batch ahead, so decoding and augmenting overlap with the
model's step (Pillow and torch release the GIL for the heavy parts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from app.gallery.prefetch import prefetch
from trainer.augment import ImageCache
from trainer.data import Sample
from trainer.sampler import PKSampler

Batch = tuple[torch.Tensor, torch.Tensor]


class AugmentedBatches:
    """P x K batches of freshly augmented images."""

    def __init__(
        self,
        samples: Sequence[Sample],
        labels: Sequence[int],
        sampler: PKSampler,
        transform: Callable[[Image.Image], torch.Tensor],
        cache: ImageCache,
    ) -> None:
        self.samples = samples
        self.labels = torch.tensor(labels)
        self.sampler = sampler
        self.transform = transform
        self.cache = cache

    def __len__(self) -> int:
        return len(self.sampler)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        self.sampler.set_epoch(epoch)
        return prefetch(self._make(idx) for idx in self.sampler)

    def _make(self, indices: list[int]) -> Batch:
        images = [self.cache.get(self.samples[i].path) for i in indices]
        pixels = torch.stack([self.transform(image) for image in images])
        return pixels, self.labels[indices]


class CachedBatches:
    """P x K batches of activations computed once, for ``views`` augmentations per image.

    What a frozen part of the backbone makes of an augmented image never changes,
    so each image is augmented ``views`` times and run through that part once per
    view (the whole backbone in the head regime, the first blocks in the partial
    one); every epoch then draws one cached view per image at almost no cost.
    """

    def __init__(self, features: torch.Tensor, labels: Sequence[int], sampler: PKSampler,
                 seed: int = 0) -> None:
        self.features = features  # (views, n, ...)
        self.labels = torch.tensor(labels)
        self.sampler = sampler
        self.seed = seed

    def __len__(self) -> int:
        return len(self.sampler)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        self.sampler.set_epoch(epoch)
        rng = np.random.default_rng([self.seed, epoch, 1])
        for indices in self.sampler:
            views = torch.from_numpy(rng.integers(0, self.features.shape[0], len(indices)))
            yield self.features[views, indices], self.labels[indices]


@torch.inference_mode()
def backbone_features(
    embed: Callable[[torch.Tensor], torch.Tensor],
    images: Callable[[int], Image.Image],
    count: int,
    transform: Callable[[Sequence[Image.Image]], torch.Tensor],
    *,
    batch_size: int = 32,
    desc: str = "features",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """What ``embed`` makes of ``count`` images, ``transform`` applied per batch of them."""
    chunks = []
    starts = range(0, count, batch_size)
    batches = prefetch(transform([images(i) for i in range(s, min(s + batch_size, count))])
                       for s in starts)
    for pixels in tqdm(batches, total=len(starts), desc=desc, unit="batch", mininterval=2):
        chunks.append(embed(pixels).to(dtype).cpu())
    return torch.cat(chunks)
