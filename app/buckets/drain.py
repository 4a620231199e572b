"""Drain the bucket-event queue in a background thread of the process that queued events.

The hook route appends and answers 202 at once; ``Drainer.wake`` starts (or
nudges) one daemon thread per process, which claims batches, groups them by
source and brings each object up to date (``Syncer.reconcile``) under the
gallery lock, like any upload. It stops after ``idle_s`` without events; the
next hook call starts it again. ``flask --app wsgi gallery events`` drains
from a separate process instead (say, where web workers should not encode).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections import defaultdict
from collections.abc import Callable

from flask import Flask

from app.buckets.event_queue import Event
from app.coordination.base import EventQueue

log = logging.getLogger(__name__)

BATCH = 256
IDLE_S = 30.0
RETRY_S = 5.0  # pause after a failed batch (a server down), before claiming again


def drain_once(app: Flask, queue: EventQueue, *, worker: str, limit: int = BATCH) -> int:
    """Claim and process one batch; returns how many events it held (0: the queue is empty)."""
    events = queue.claim(worker, limit=limit)
    if not events:
        return 0
    try:
        with queue.holding(events):  # with Redis: renew the claims' lease meanwhile
            process(app, events)
    except Exception:  # noqa: BLE001 - the drainer's top: retry later, never die silently
        log.exception("bucket events failed; they will be retried")
        queue.retry_later(events)
        raise
    queue.done(events)
    return len(events)


def process(app: Flask, events: list[Event]) -> None:
    """Reconcile every object named by ``events`` in each source that holds it.

    Sources are filed under their gallery's alias; each gallery's sources are
    reconciled with that gallery current (its collection, model and lock).
    """
    from app.buckets import service
    from app.extensions import galleries
    from app.galleries.current import use

    with app.app_context():
        catalog = service.catalog()
        for name in galleries().names():
            use(name)
            gallery = service.gallery()
            keys: dict[int, set[str]] = defaultdict(set)
            sources = {}
            for event in events:
                for source in catalog.containing(event.bucket, event.key):
                    if source.gallery == gallery:
                        sources[source.id] = source
                        keys[source.id].add(event.key)
            for source_id, wanted in keys.items():
                service.syncer(sources[source_id]).reconcile(sorted(wanted))


class Drainer:
    """At most one draining thread per process."""

    def __init__(
        self, app: Flask, queue: Callable[[], EventQueue], *, idle_s: float = IDLE_S
    ) -> None:
        self.app = app
        self.queue = queue
        self.idle_s = idle_s
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        with self._lock:
            self._wake.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="bucket-events", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        worker = f"{socket.gethostname()}-{os.getpid()}-{threading.get_ident()}"
        queue = self.queue()
        while True:
            self._wake.clear()
            try:
                handled = drain_once(self.app, queue, worker=worker)
            except Exception:  # noqa: BLE001 - logged in drain_once; keep the thread alive
                self._wake.wait(RETRY_S)
                continue
            if handled or self._wake.wait(self.idle_s):
                continue
            with self._lock:  # stop, unless a wake came in meanwhile
                if not self._wake.is_set():
                    self._thread = None
                    return
