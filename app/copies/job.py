"""The admin's duplicate search as a background job: a thread, a state file, a report file.

A thread of the web worker rather than a detached process like the reindex
(app/jobs/launch.py): the pass is mostly Milvus range searches or a numpy product,
both of which leave the GIL to request threads, it changes nothing, and it is
cheap to start again if its worker is restarted. Every worker sees its progress
and result through files under the instance folder (``instance/copies/``); the
thread holds a ``flock`` for its whole life, so a state that says "running" while
the lock is free means the worker died, and the page says so.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.copies.marks import SAFE_NAME
from app.copies.report import DuplicateReport, as_json
from app.exceptions import LookalikeError
from app.files import atomic_write
from app.jobs.state import is_locked, read_json, release, try_lock, write_json

WRITE_INTERVAL = 0.5  # seconds between progress writes


class DuplicatesRunning(LookalikeError):
    status = 409
    title = "A duplicate search is already running"


Work = Callable[[Callable[[int, int], None]], DuplicateReport]


class DuplicateJob:
    """The duplicate search of one gallery (one serving alias)."""

    def __init__(self, instance_path: str | Path, alias: str) -> None:
        folder = Path(instance_path) / "copies"
        name = SAFE_NAME.sub("_", alias) or "gallery"
        self.state_path = folder / f"{name}.duplicates.json"
        self.lock_path = folder / f"{name}.duplicates.lock"
        self.report_path = folder / f"{name}.duplicates-report.json"

    def state(self) -> dict[str, Any]:
        state = read_json(self.state_path) or {"phase": "idle", "done": 0, "total": 0}
        if state.get("phase") == "running" and not is_locked(self.lock_path):
            state = {
                **state,
                "phase": "failed",
                "error": "The search stopped with its worker process; start it again.",
            }
        return state

    def start(self, work: Work, *, user: str = "") -> None:
        """Run ``work`` in a thread; DuplicatesRunning when one runs already."""
        fd = try_lock(self.lock_path)
        if fd is None:
            raise DuplicatesRunning("A duplicate search is running; wait for it to finish.")
        started = time.time()
        write_json(
            self.state_path,
            {"phase": "running", "done": 0, "total": 0, "started": started, "user": user[:64]},
        )
        thread = threading.Thread(
            target=self._run, args=(work, fd, started, user), name="duplicates", daemon=True
        )
        thread.start()

    def _run(self, work: Work, fd: int, started: float, user: str) -> None:
        last = 0.0

        def progress(done: int, total: int) -> None:
            nonlocal last
            if time.monotonic() - last >= WRITE_INTERVAL:
                last = time.monotonic()
                write_json(
                    self.state_path,
                    {
                        "phase": "running",
                        "done": done,
                        "total": total,
                        "started": started,
                        "user": user,
                    },
                )

        try:
            report = work(progress)
            atomic_write(self.report_path, as_json(report).encode())
            write_json(
                self.state_path,
                {
                    "phase": "done",
                    "done": report.scanned,
                    "total": report.scanned,
                    "started": started,
                    "finished": time.time(),
                    "user": user,
                    "groups": len(report.groups),
                },
            )
        except LookalikeError as exc:
            write_json(
                self.state_path,
                {
                    "phase": "failed",
                    "error": exc.message,
                    "started": started,
                    "finished": time.time(),
                },
            )
        except Exception as exc:  # noqa: BLE001 - the thread's top: report, never hang "running"
            write_json(
                self.state_path,
                {
                    "phase": "failed",
                    "started": started,
                    "error": f"{type(exc).__name__}: {exc}",
                    "finished": time.time(),
                },
            )
        finally:
            release(fd)

    def report(self) -> dict[str, Any] | None:
        return read_json(self.report_path)

    def resolved(self, ids: set[str]) -> None:
        """Take a group that was acted on (kept one, or marked) out of the stored report."""
        report = self.report()
        if report is None:
            return
        report["groups"] = [
            g for g in report["groups"] if not {m["id"] for m in g["members"]} & ids
        ]
        atomic_write(self.report_path, json.dumps(report, indent=1).encode())
