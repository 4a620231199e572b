"""Micro-batching: concurrent model calls of one process merged into one batch.

Request threads of a worker would otherwise fight over the cores, and the CPU runs
a small batch faster per image than one image at a time. The first caller runs the
model; callers that arrive meanwhile wait and run next as one batch. A lone caller
runs at once; there is no timer and no thread. Batches are numpy arrays, merged
with numpy: a torch op here would slow the model (app/model/main_thread.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from app.metrics.registry import BATCH_SIZE


@dataclass(eq=False)
class _Request:
    pixels: np.ndarray
    result: np.ndarray | None = None
    error: BaseException | None = None
    finished: bool = False

    def outcome(self) -> np.ndarray:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class Coalescer:
    """Runs ``model`` on the rows of concurrent calls, at most ``max_rows`` per call."""

    def __init__(self, model: Callable[[np.ndarray], np.ndarray], max_rows: int) -> None:
        self._model = model
        self._max_rows = max(1, max_rows)
        self._cond = threading.Condition()
        self._pending: list[_Request] = []
        self._busy = False
        self.calls = 0  # model calls made and rows run (read by the tests)
        self.rows = 0

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """The model's output for ``pixels``, computed alone or merged with other calls."""
        request = _Request(pixels)
        with self._cond:
            self._pending.append(request)
            while self._busy and not request.finished:
                self._cond.wait()
            if request.finished:  # a batch run by another caller included it
                return request.outcome()
            self._busy = True
            batch = self._take(request)
        try:
            pixels = [r.pixels for r in batch]
            merged = pixels[0] if len(pixels) == 1 else np.concatenate(pixels)
            output, error = self._model(merged), None
        except BaseException as exc:  # noqa: BLE001 - re-raised in every caller of the batch
            output, error = None, exc
        with self._cond:
            offset = 0
            for item in batch:
                rows = item.pixels.shape[0]
                if output is not None:
                    item.result = output[offset : offset + rows]
                item.error = error
                item.finished = True
                offset += rows
            self.calls += 1
            self.rows += offset
            BATCH_SIZE.observe(offset)
            self._busy = False
            self._cond.notify_all()
        return request.outcome()

    def _take(self, own: _Request) -> list[_Request]:
        """Own request first, then waiting ones in arrival order while they fit."""
        self._pending.remove(own)
        batch, rows = [own], own.pixels.shape[0]
        for waiting in list(self._pending):
            if waiting.pixels.shape[1:] != own.pixels.shape[1:]:
                continue
            if rows + waiting.pixels.shape[0] > self._max_rows:
                break
            batch.append(waiting)
            rows += waiting.pixels.shape[0]
            self._pending.remove(waiting)
        return batch
