"""Micro-batching: concurrent calls share model batches, each gets its own rows back."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from app.gallery import imaging
from app.model.batching import Coalescer


class GatedModel:
    """Row sums of its input; the first call blocks until released, so others queue."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[int] = []

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        if not self.batches:
            self.entered.set()
            assert self.gate.wait(10)
        self.batches.append(pixels.shape[0])
        return pixels.reshape(pixels.shape[0], -1).sum(axis=1, keepdims=True)


def rows(*values: float) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).reshape(-1, 1, 1)


def wait_for_waiters(coalescer: Coalescer, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(coalescer._pending) < count:
        assert time.monotonic() < deadline, "callers did not queue"
        time.sleep(0.005)  # the poll interval of a wait with a deadline


def test_a_lone_call_runs_at_once() -> None:
    model = GatedModel()
    model.gate.set()
    coalescer = Coalescer(model, max_rows=8)
    assert coalescer(rows(1, 2)).ravel().tolist() == [1, 2]
    assert model.batches == [2] and coalescer.calls == 1


def run_behind_a_busy_call(model: GatedModel, coalescer: Coalescer,
                           waiting: list[np.ndarray]) -> list[np.ndarray]:
    """One call holds the model; ``waiting`` calls queue behind it; then the model is freed."""
    with ThreadPoolExecutor(len(waiting) + 1) as pool:
        first = pool.submit(coalescer, rows(1))
        assert model.entered.wait(10)
        others = [pool.submit(coalescer, pixels) for pixels in waiting]
        wait_for_waiters(coalescer, len(waiting))
        model.gate.set()
        return [future.result(10) for future in [first, *others]]


def test_callers_waiting_on_a_busy_model_share_the_next_batch() -> None:
    model = GatedModel()
    coalescer = Coalescer(model, max_rows=8)
    results = run_behind_a_busy_call(model, coalescer,
                                     [rows(10 * n, 10 * n + 1) for n in (1, 2, 3)])
    assert [r.ravel().tolist() for r in results] == [[1], [10, 11], [20, 21], [30, 31]]
    assert model.batches == [1, 6]
    assert (coalescer.calls, coalescer.rows) == (2, 7)


def test_a_batch_never_exceeds_max_rows() -> None:
    model = GatedModel()
    coalescer = Coalescer(model, max_rows=2)
    results = run_behind_a_busy_call(model, coalescer, [rows(n) for n in (2, 3, 4)])
    assert [r.item() for r in results] == [1, 2, 3, 4]
    assert model.batches[0] == 1 and max(model.batches) <= 2 and sum(model.batches) == 4


def test_a_model_error_reaches_every_caller_of_its_batch_and_the_next_call_works() -> None:
    calls = []

    def failing(pixels: np.ndarray) -> np.ndarray:
        calls.append(pixels.shape[0])
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return pixels.reshape(pixels.shape[0], -1)

    coalescer = Coalescer(failing, max_rows=8)
    with pytest.raises(RuntimeError, match="out of memory"):
        coalescer(rows(1))
    assert coalescer(rows(5)).ravel().tolist() == [5]


def test_concurrent_embeds_equal_sequential_ones(tiny_model_dir: Path, photos) -> None:
    from app.model.encoder import Encoder

    encoder = Encoder.from_pretrained(str(tiny_model_dir), precision="fp32")
    images = [imaging.decode(data).image for data in photos.values()] * 3
    expected = np.concatenate([encoder.embed([image]) for image in images])
    with ThreadPoolExecutor(8) as pool:
        got = np.concatenate(list(pool.map(lambda image: encoder.embed([image]), images)))
    np.testing.assert_allclose(got, expected, atol=1e-5)
