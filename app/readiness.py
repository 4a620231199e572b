"""Warm a worker before it takes traffic: load the model, then reach the serving collection.

gunicorn calls :func:`warm_up` in each worker after the fork and before the
worker accepts a connection (gunicorn.conf.py, ``post_worker_init``), so the
first search does not pay for loading the model. A service that is down is
reported, not raised: the worker then serves, /api/health says what is wrong,
and the next request tries again (nothing failed is cached).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from flask import Flask

from app.exceptions import LookalikeError, ModelLoadError


@dataclass(frozen=True)
class WarmUp:
    model: str  # what was loaded, or the configured name when it could not be
    loaded: bool
    seconds: float
    problems: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.problems


def warm_up(app: Flask) -> WarmUp:
    """Load the model that serves searches (one real inference), ready to take traffic.

    That is the model of the serving collection, which after a reindex to a new
    model may differ from LOOKALIKE_MODEL; only when Milvus cannot be reached is
    the configured model loaded instead, so a worker never holds two models just
    to warm up.
    """
    from app import extensions

    started = time.monotonic()
    problems = []
    with app.app_context():
        try:
            encoder = extensions.encoder()  # the serving collection and the model that built it
        except ModelLoadError as error:
            return WarmUp(str(app.config["MODEL"]), False, time.monotonic() - started,
                          [f"the model could not be loaded: {error.message}"])
        except LookalikeError as error:
            problems.append(f"the search index is not ready: {error.message}")
            try:
                encoder = app.extensions["lookalike.encoder"].get()
            except LookalikeError as load_error:
                return WarmUp(str(app.config["MODEL"]), False, time.monotonic() - started,
                              [*problems, f"the model could not be loaded: {load_error.message}"])
        model = (f"{encoder.name} ({encoder.dim}-d, {encoder.device}, "
                 f"{encoder.backend} {encoder.backend_precision})")
    return WarmUp(model, True, time.monotonic() - started, problems)
