"""How fast and how faithful a runtime is on this machine: what ``auto`` decides on.

Timings are interleaved (every candidate once per round, median over rounds), so
a colleague's job that slows the machine down for a second slows every candidate.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.model.backends import Runtime

MIN_COSINE = 0.999  # below this a runtime changes search results (cosine to torch fp32)


@dataclass(frozen=True)
class Speed:
    """Images/s of one runtime at batch 1 (searches) and at the ingest batch."""

    batch1: float
    batched: float


def min_cosine(features: np.ndarray, reference: np.ndarray) -> float:
    """The worst cosine between matching rows of two feature arrays."""
    a = features / np.linalg.norm(features, axis=1, keepdims=True)
    b = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    return float(np.min(np.sum(a * b, axis=1)))


def speeds(runtimes: Sequence[Runtime], probe: np.ndarray, *, rounds: int = 3,
           calls: int = 3) -> list[Speed]:
    """Images/s of each runtime at batch 1 and at ``len(probe)``, timed in turns."""
    single = probe[:1]
    for runtime in runtimes:  # warm up both shapes (OpenVINO compiles per shape)
        runtime(single)
        runtime(probe)
    ones: list[list[float]] = [[] for _ in runtimes]
    many: list[list[float]] = [[] for _ in runtimes]
    for _ in range(rounds):
        for i, runtime in enumerate(runtimes):
            ones[i].append(_rate(runtime, single, calls))
            many[i].append(_rate(runtime, probe, 1))
    return [Speed(statistics.median(o), statistics.median(m))
            for o, m in zip(ones, many, strict=True)]


def _rate(runtime: Runtime, pixels: np.ndarray, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        runtime(pixels)
    return calls * len(pixels) / (time.perf_counter() - started)
