"""The gunicorn worker class of gunicorn.conf.py: gthread, with the model on the main thread.

gunicorn's gthread worker runs its connection loop on the main thread and each
request on a pool thread. This one moves the loop to a thread of its own and
keeps the main thread for model calls (app/model/main_thread.py says why).
Everything else, signals, heartbeat, graceful shutdown and max_requests, is
gthread's own: signal handlers still run on the main thread and only flip flags or exit.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

from app.model import main_thread
from app.web import queueing


class MainThreadModelWorker(ThreadWorker):
    def run(self) -> None:
        failure: list[BaseException] = []

        def loop() -> None:
            try:
                super(MainThreadModelWorker, self).run()
            except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
                failure.append(exc)

        thread = threading.Thread(target=loop, name="gunicorn-loop", daemon=True)
        # The loop starts only once the main thread serves: a request accepted
        # before that would run its model call on a request thread.
        main_thread.serve(lambda: not thread.is_alive(), then=thread.start)
        thread.join()
        if failure:  # as gthread would: gunicorn logs it and the arbiter restarts us
            raise failure[0]

    def enqueue_req(self, conn: Any) -> None:
        """Stamp the time a connection waits from, for the load shedder (app/web/queueing.py)."""
        conn.lookalike_queued_at = time.monotonic()
        super().enqueue_req(conn)

    def handle(self, conn: Any) -> Any:
        queueing.taken(getattr(conn, "lookalike_queued_at", None))
        return super().handle(conn)
