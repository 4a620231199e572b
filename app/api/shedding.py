"""Load shedding: a search that could not be answered within SHED_AFTER_SECONDS is
refused at once (503 + Retry-After) instead of queueing until a timeout.

A worker's searches wait in two places: in gunicorn's queue before a thread takes
them (``app.web.queueing.waited``), and inside, for the model, behind the searches
already running. A search is refused when the time it has waited plus the time
the searches ahead of it and itself take here (the running mean of this worker's
searches) exceeds the bound. Refusals take no model time, so a long queue drains
quickly and accepted searches stay near the bound. Health, static files and
management calls are never shed.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app

from app.exceptions import Overloaded
from app.metrics.registry import QUEUE_DEPTH, SHED
from app.web import queueing

F = TypeVar("F", bound=Callable[..., Any])
SMOOTHING = 0.2  # weight of the newest search in the running mean of search time
MERGED = 8  # searches one model call serves together (the CPU batch, app/model/batching.py)


class Backlog:
    """Searches inside this worker, and how long one takes (per process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.inside = 0
        self.seconds = 0.0  # running mean of an accepted search's own time; 0 = none yet

    def admit(self, bound: float) -> float | None:
        """Count the search in and return None, or the expected wait if it is over ``bound``."""
        waited = queueing.waited() or 0.0
        with self._lock:
            # Searches inside are merged into model calls of up to MERGED images.
            expected = waited + math.ceil((self.inside + 1) / MERGED) * self.seconds
            # A search with none ahead of it here is served at once: refusing it would
            # gain nothing, and it keeps the mean current (after a slow spell, e.g. during
            # a reindex, a mean over the bound would otherwise refuse every search forever).
            if bound > 0 and self.inside > 0 and expected > bound:
                return expected
            self.inside += 1
        QUEUE_DEPTH.inc()
        return None

    def leave(self, seconds: float | None) -> None:
        with self._lock:
            self.inside -= 1
            if seconds is not None:
                self.seconds = (
                    seconds
                    if not self.seconds
                    else ((1 - SMOOTHING) * self.seconds + SMOOTHING * seconds)
                )
        QUEUE_DEPTH.dec()


_BACKLOG = Backlog()


def backlog() -> Backlog:
    return _BACKLOG


def shed_when_full(view: F) -> F:
    """Refuse the search at once when this worker cannot answer it within the bound."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = float(current_app.config["SHED_AFTER_SECONDS"] or 0)
        expected = _BACKLOG.admit(bound)
        if expected is not None:
            SHED.inc()
            retry = max(1, math.ceil(expected - bound))
            raise Overloaded(
                f"This server is answering as many searches as it can. Try again in {retry} s.",
                retry_after=retry,
            )
        started = time.perf_counter()
        finished = None
        try:
            result = view(*args, **kwargs)
            finished = time.perf_counter() - started
            return result
        finally:
            _BACKLOG.leave(finished)

    return wrapper  # type: ignore[return-value]
