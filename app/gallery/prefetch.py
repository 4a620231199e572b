"""Run a producer in a thread, a few items ahead of its consumer.

Ingest and the trainer both use it so that reading, decoding and preprocessing
overlap with the model, which is what the pipeline waits for.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterator[T], depth: int = 2, *, name: str = "prefetch") -> Iterator[T]:
    """Yield ``items``, produced in a thread ``depth`` ahead of the consumer.

    An error in the producer is re-raised in the consumer; if the consumer stops
    early, the producer is told to stop.
    """
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            slots.put(exc)

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)
