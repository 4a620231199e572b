"""How long the current request waited in the worker before a thread took it.

gunicorn's gthread worker accepts connections at once and queues them for its
few threads; under overload that queue, invisible to the app, is where searches
wait. The worker (app/model/gunicorn_worker.py) stamps each connection when it is
queued and says so here when a thread takes it; the load shedder reads it.
Outside gunicorn (``flask run``, tests) nothing is stamped: ``waited()`` is None.
"""

from __future__ import annotations

import threading
import time

_local = threading.local()


def taken(queued_at: float | None) -> None:
    """Called on the thread that handles a connection, with its queueing time."""
    _local.queued_at = queued_at


def waited() -> float | None:
    """Seconds between queueing and a thread taking this request, or None."""
    queued_at = getattr(_local, "queued_at", None)
    return None if queued_at is None else time.monotonic() - queued_at
