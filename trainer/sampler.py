"""Batches of P labels x K images, so that every anchor in a batch has positives.

Written here rather than taken from pytorch-metric-learning's MPerClassSampler
because a run must be resumable mid-way: the order of epoch ``e`` depends only
on ``(seed, e)``, not on a global random state.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np


class PKSampler:
    """Yields lists of dataset indices: ``p`` labels, ``k`` images of each.

    An epoch covers about as many images as the dataset holds. Labels with
    fewer than ``k`` images are drawn with replacement; labels with a single
    image are never anchors, so they are left out.
    """

    def __init__(self, labels: Sequence[int], *, p: int, k: int, seed: int = 0) -> None:
        groups: dict[int, list[int]] = defaultdict(list)
        for index, label in enumerate(labels):
            groups[label].append(index)
        self.groups = {label: idx for label, idx in groups.items() if len(idx) >= 2}
        if len(self.groups) < 2:
            raise ValueError("Metric learning needs at least two labels with two images each.")
        self.p = min(p, len(self.groups))
        self.k = k
        self.seed = seed
        self.epoch = 0
        self.total = sum(len(idx) for idx in self.groups.values())

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def batch_size(self) -> int:
        return self.p * self.k

    def __len__(self) -> int:
        return max(1, self.total // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        labels = list(self.groups)
        # Each label is visited in proportion to its size, in shuffled rounds.
        pools = {label: list(rng.permutation(self.groups[label])) for label in labels}
        weights = np.array([len(self.groups[label]) for label in labels], dtype=float)
        for _ in range(len(self)):
            chosen = rng.choice(len(labels), size=self.p, replace=False, p=weights / weights.sum())
            batch: list[int] = []
            for position in chosen:
                batch += self._take(pools, labels[position], rng)
            yield batch

    def _take(self, pools: dict[int, list[int]], label: int, rng: np.random.Generator) -> list[int]:
        members = self.groups[label]
        if len(members) < self.k:
            return [int(i) for i in rng.choice(members, size=self.k, replace=True)]
        pool = pools[label]
        if len(pool) < self.k:
            pool = list(rng.permutation(members))
        taken, pools[label] = pool[: self.k], pool[self.k :]
        return [int(i) for i in taken]
