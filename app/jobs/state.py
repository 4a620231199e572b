"""The reindex job's state file and the file locks every process agrees on.

Gunicorn workers, CLI commands and the job are separate processes, so what they
share lives in small files under the instance folder: ``reindex.json`` (progress,
rewritten atomically), ``reindex.lock`` (held by the running job; free while the
state says running means the job died), ``reindex.cancel`` and ``gallery.lock``
(writers shared, the switch exclusive). Every process must share that folder
(docs/architecture.md, "Reindex"). With ``LOOKALIKE_REDIS_URL`` the same things
live in Redis instead (app/coordination/redis_store.py subclasses ``JobFiles``).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from app.exceptions import LookalikeError, ServiceUnavailable
from app.files import atomic_write

ACTIVE_PHASES = ("queued", "loading", "encoding", "indexing", "switching")
FINAL_PHASES = ("done", "failed", "cancelled")
MAX_REASONS = 10  # failure reasons kept in the state file; the count is exact


class JobRunning(LookalikeError):
    status = 409
    title = "A reindex is already running"


class GalleryBusy(ServiceUnavailable):
    title = "Gallery busy"


@dataclass(frozen=True)
class JobState:
    """One job's progress, as written by the job and shown on the admin page."""

    id: str = ""
    kind: str = "reindex"  # "reindex" or "rollback"
    phase: str = "idle"  # "idle", one of ACTIVE_PHASES or one of FINAL_PHASES
    user: str = ""
    model: str = ""
    old_collection: str = ""
    new_collection: str = ""
    total: int = 0
    done: int = 0
    failed: int = 0
    failures: tuple[str, ...] = ()
    rate: float = 0.0  # images per second while encoding
    eta_s: float | None = None
    started: float = 0.0  # epoch seconds
    finished: float = 0.0
    pid: int = 0
    message: str = ""
    error: str = ""

    @property
    def active(self) -> bool:
        return self.phase in ACTIVE_PHASES

    @property
    def duration_s(self) -> float:
        if not self.started:
            return 0.0
        return (self.finished or time.time()) - self.started

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["failures"] = list(self.failures)
        data["active"] = self.active
        data["duration_s"] = round(self.duration_s, 1)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobState:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["failures"] = tuple(values.get("failures") or ())
        return cls(**values)


class JobFiles:
    """Where the job's files live for one instance folder."""

    def __init__(self, instance_path: str | Path) -> None:
        self.root = Path(instance_path)
        self.state = self.root / "reindex.json"
        self.last = self.root / "reindex-last.json"
        self.lock = self.root / "reindex.lock"
        self.cancel = self.root / "reindex.cancel"
        self.log = self.root / "reindex.log"
        self.gallery_lock = self.root / "gallery.lock"

    def read(self) -> JobState:
        """The current state; a job that died without saying so is reported as failed."""
        state = _load(self.state)
        if state.active and not self.job_locked():
            state = _load(self.state)  # it may have finished between the two looks
            if state.active:
                state = replace(state, phase="failed", finished=state.finished or time.time(),
                                error=died_message(state))
        return state

    def write(self, state: JobState) -> None:
        write_json(self.state, state.to_json())

    def last_success(self) -> JobState | None:
        """The last job that finished and switched the alias (for "last reindex" stats)."""
        state = _load(self.last)
        return state if state.phase == "done" else None

    def record_success(self, state: JobState) -> None:
        write_json(self.last, state.to_json())

    def request_cancel(self, job_id: str) -> None:
        write_json(self.cancel, {"id": job_id, "at": time.time()})

    def cancel_requested(self, job_id: str) -> bool:
        data = read_json(self.cancel)
        return bool(data) and data.get("id") in (job_id, "*")

    def clear_cancel(self) -> None:
        self.cancel.unlink(missing_ok=True)

    def job_locked(self) -> bool:
        """Whether a job of this gallery holds its lock (a dead one holds nothing)."""
        return is_locked(self.lock)

    def writes(self, *, timeout: float = 60.0) -> AbstractContextManager[None]:
        return _flock_writes(self, timeout=timeout)

    def frozen(
        self, *, cancelled: Callable[[], bool], waiting: Callable[[], None]
    ) -> AbstractContextManager[bool]:
        return _flock_frozen(self, cancelled=cancelled, waiting=waiting)


def died_message(state: JobState) -> str:
    return (f"The job stopped unexpectedly (killed or crashed) while {state.phase}. The serving "
            "alias was not moved: searches use the previous collection. Start a new reindex; "
            "details may be in instance/reindex.log.")


def _load(path: Path) -> JobState:
    data = read_json(path)
    try:
        return JobState.from_json(data) if data else JobState()
    except TypeError:  # a state file from another version: treat as no state
        return JobState()


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically: a reader sees the old content or the new, never half."""
    atomic_write(path, json.dumps(data).encode())


# -- locks -----------------------------------------------------------------------------


def try_lock(path: Path, *, shared: bool = False) -> int | None:
    """An fd holding ``flock`` on ``path``, or None if another holder conflicts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def acquire(path: Path, *, attempts: int = 10) -> int | None:
    """``try_lock``, retried briefly: a status reader may hold the lock for a moment."""
    for attempt in range(attempts):
        fd = try_lock(path)
        if fd is not None:
            return fd
        if attempt + 1 < attempts:
            time.sleep(0.05)
    return None


def release(fd: int) -> None:
    os.close(fd)  # closing the last fd of the open file releases the flock


def is_locked(path: Path) -> bool:
    """Whether some process holds ``path`` (a dead one holds nothing)."""
    fd = try_lock(path)
    if fd is None:
        return True
    release(fd)
    return False


def gallery_writes(files: JobFiles, *, timeout: float = 60.0) -> AbstractContextManager[None]:
    """Hold the gallery lock shared while changing the gallery (see the module docstring;
    with Redis, app/coordination/leases.py)."""
    return files.writes(timeout=timeout)


def gallery_frozen(
    files: JobFiles, *, cancelled: Callable[[], bool], waiting: Callable[[], None]
) -> AbstractContextManager[bool]:
    """Hold the gallery lock exclusively, once running writes finish.

    Yields False (without the lock) if the job was cancelled while waiting.
    ``waiting`` is called about once a second while writers hold the lock.
    """
    return files.frozen(cancelled=cancelled, waiting=waiting)


@contextmanager
def _flock_writes(files: JobFiles, *, timeout: float) -> Iterator[None]:
    deadline = time.monotonic() + timeout
    while (fd := try_lock(files.gallery_lock, shared=True)) is None:
        if time.monotonic() > deadline:
            raise GalleryBusy("The gallery is being switched to a new index and stayed busy "
                              f"for {timeout:.0f} s. Try again in a moment.")
        time.sleep(0.1)
    try:
        yield
    finally:
        release(fd)


@contextmanager
def _flock_frozen(
    files: JobFiles, *, cancelled: Callable[[], bool], waiting: Callable[[], None]
) -> Iterator[bool]:
    next_note = 0.0
    while (fd := try_lock(files.gallery_lock)) is None:
        if cancelled():
            yield False
            return
        if time.monotonic() >= next_note:
            waiting()
            next_note = time.monotonic() + 1.0
        time.sleep(0.1)
    try:
        yield True
    finally:
        release(fd)
