"""The embedded default's coordination: files under ``instance/`` and ``flock``.

Every process of one machine (gunicorn workers, CLI commands, the reindex job)
shares the instance folder, so the job state, the locks, the audit log and the
bucket feature's SQLite files are there (app/jobs/state.py), as before Redis was an
option.
Nothing here is seen by a second machine: docs/deploy.md, "Several web servers".
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from app.jobs.state import JobFiles, JobRunning, acquire, is_locked, release, try_lock

if TYPE_CHECKING:
    from app.buckets.catalog import Catalog, SourceRecord
    from app.buckets.event_queue import EventQueue

log = logging.getLogger(__name__)

START_LOCK = "reindex-start.lock"  # held for a moment while a job of any gallery starts
AUDIT_FILE = "audit.log"
TAIL_BYTES = 256 * 1024  # how far back from the end the audit log is read


class FileJobLock:
    """A ``flock`` on ``reindex.lock``, handed to the job process as an open fd."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pass_fds = (fd,)

    def handoff_args(self) -> list[str]:
        return ["--lock-fd", str(self.fd)]

    def handed_over(self, child: subprocess.Popen[bytes]) -> None:
        # Reap it when it ends, whatever this process is doing then (no zombie, and
        # no "subprocess still running" warning if we exit first: it outlives us).
        threading.Thread(target=child.wait, name=f"reap-job-{child.pid}", daemon=True).start()
        self.release()  # the child holds the lock from here on

    def release(self) -> None:
        if self.fd >= 0:
            release(self.fd)
            self.fd = -1


class FileAuditLog:
    """``instance/audit.log``: appended with O_APPEND, so lines from several processes
    do not interleave."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, line: str) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        except OSError as exc:  # the action happened; losing its log line must not undo it
            log.error("could not write the audit log %s: %s", self.path, exc)

    def lines(self, limit: int) -> list[str]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(max(0, self.path.stat().st_size - TAIL_BYTES))
                lines = handle.read().decode(errors="replace").splitlines()
        except OSError:
            return []
        return lines[::-1][: limit + 1]  # one more: the tail's first line may be partial


class FileSyncLocks:
    """``instance/bucket-source-<id>.lock``: a ``flock`` per source, gone with its process."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, source: SourceRecord) -> Path:
        return self.root / f"bucket-source-{source.id}.lock"

    @contextmanager
    def holding(self, source: SourceRecord) -> Iterator[None]:
        fd = try_lock(self.path(source))
        if fd is None:
            raise JobRunning(f"A sync of {source.location} is already running.")
        try:
            yield
        finally:
            release(fd)

    def holder(self, source: SourceRecord) -> str | None:
        return "another process on this machine" if is_locked(self.path(source)) else None


class LocalCoordination:
    """Files in the instance folder: one machine only."""

    shared = False

    def __init__(self, instance_path: str | Path) -> None:
        self.root = Path(instance_path)

    def job_files(self, gallery: str, root: Path) -> JobFiles:
        return JobFiles(root)

    def take_job_lock(self, files: JobFiles, others: dict[str, JobFiles]) -> FileJobLock:
        """The job lock of ``files``' gallery, if no gallery's job runs on this machine.

        A short-held start lock makes "check the others, take ours" one step for
        concurrent starts.
        """
        from app.jobs.launch import running_message

        start_fd = acquire(self.root / START_LOCK, attempts=100)
        if start_fd is None:
            raise JobRunning("Another reindex is being started right now. Try again in a moment.")
        try:
            for name, other in others.items():
                if other.root != files.root and is_locked(other.lock):
                    raise JobRunning(
                        f"Gallery {name!r}: "
                        + running_message(other.read())
                        + " Only one reindex runs at a time on this machine."
                    )
            fd = acquire(files.lock)
            if fd is None:
                raise JobRunning(running_message(files.read()))
            return FileJobLock(fd)
        finally:
            release(start_fd)

    def adopt_job_lock(self, *, lock_fd: int | None, lock_token: str | None) -> FileJobLock:
        if lock_fd is None:
            raise JobRunning("This job was started without its lock (--lock-fd).")
        # Handed over by ``start``: the same open file, so this succeeds only if we hold it.
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return FileJobLock(lock_fd)

    def login_limiter(self, attempts: int, window: float):  # type: ignore[no-untyped-def]
        from app.admin.auth import LoginLimiter

        return LoginLimiter(attempts, window)  # per worker process

    def audit_log(self) -> FileAuditLog:
        return FileAuditLog(self.root / AUDIT_FILE)

    def event_queue(self) -> EventQueue:
        from app.buckets.event_queue import EventQueue

        return EventQueue.in_folder(self.root)

    def sync_locks(self) -> FileSyncLocks:
        return FileSyncLocks(self.root)

    def catalog(self) -> Catalog:
        from app.buckets.catalog import Catalog

        return Catalog.in_folder(self.root)
