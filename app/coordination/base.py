"""What the web servers, CLI commands and reindex jobs of one deployment must agree on.

Two implementations choose once per process (app/coordination/__init__.py): the
embedded default keeps files under ``instance/`` (app/coordination/local.py), a
deployment with several web servers keeps the same things in Redis
(app/coordination/redis_store.py). The rest of the app sees only these shapes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from app.exceptions import ServiceUnavailable

if TYPE_CHECKING:
    from app.buckets.catalog import Known, SourceRecord
    from app.buckets.event_queue import Event
    from app.buckets.location import Location
    from app.jobs.state import JobFiles


class CoordinationUnavailable(ServiceUnavailable):
    """The shared store (Redis) cannot be reached: a 503 that says so."""

    title = "Coordination store unavailable"


class JobLock(Protocol):
    """The one-at-a-time reindex lock while held, here or handed to a job process."""

    pass_fds: tuple[int, ...]

    def handoff_args(self) -> list[str]:
        """Command-line options that let the job process take the lock over."""
        ...

    def handed_over(self, child: subprocess.Popen[bytes]) -> None:
        """The job process started: stop holding the lock here (it holds it now)."""
        ...

    def release(self) -> None: ...


class LoginLimiter(Protocol):
    def wait(self, key: tuple[str, str]) -> float: ...

    def failed(self, key: tuple[str, str]) -> None: ...

    def succeeded(self, key: tuple[str, str]) -> None: ...


class AuditLog(Protocol):
    def append(self, line: str) -> None: ...

    def lines(self, limit: int) -> list[str]:
        """The last ``limit`` lines, newest first (a damaged one may be among them)."""
        ...


class EventQueue(Protocol):
    """Bucket events: appended by the hook route, claimed in batches by drainers, each
    finished once; a claim whose drainer died is taken over (app/buckets/drain.py)."""

    def push(self, events: Iterable[Event]) -> int: ...

    def claim(self, worker: str, *, limit: int = 256) -> list[Event]: ...

    def holding(self, events: list[Event]) -> AbstractContextManager[None]:
        """Keep the claims of ``events`` while they are worked on."""
        ...

    def done(self, events: Iterable[Event]) -> None: ...

    def retry_later(self, events: Iterable[Event]) -> None:
        """Give events back (a failed batch); drop those that failed too often."""
        ...

    def pending(self) -> int: ...


class SyncLocks(Protocol):
    """One sync per bucket source at a time, across processes (and hosts)."""

    def holding(self, source: SourceRecord) -> AbstractContextManager[None]:
        """Hold the source's lock, or raise JobRunning saying who holds it."""
        ...

    def holder(self, source: SourceRecord) -> str | None:
        """Who syncs the source now, in words (None: nobody)."""
        ...


class SourceCatalog(Protocol):
    """The bucket sources, their CSV labels and manifests: SQLite under ``instance/``
    (app/buckets/catalog.py) or Redis (app/coordination/redis_catalog.py)."""

    def add(
        self, gallery: str, location: Location, *, endpoint: str = "", label_rule: str = ""
    ) -> SourceRecord: ...

    def get(self, gallery: str, location: Location) -> SourceRecord: ...

    def by_id(self, source_id: int) -> SourceRecord: ...

    def sources(self, gallery: str | None = None) -> list[SourceRecord]: ...

    def containing(self, bucket: str, key: str) -> list[SourceRecord]: ...

    def update(self, source_id: int, **values: Any) -> None: ...

    def recount(self, source_id: int) -> SourceRecord:
        """Set seen/indexed/failed from the manifest."""
        ...

    def set_labels(self, source_id: int, labels: Iterable[tuple[str, str]]) -> int: ...

    def labels_for(self, source_id: int, keys: Iterable[str]) -> dict[str, str]: ...

    def known(self, source_id: int, *, after: str = "", limit: int = 1000) -> list[Known]:
        """Up to ``limit`` manifest entries with keys after ``after``, in key order."""
        ...

    def iter_known(
        self, source_id: int, *, after: str = "", page: int = 1000
    ) -> Iterator[Known]: ...

    def known_one(self, source_id: int, key: str) -> Known | None: ...

    def record(
        self,
        source_id: int,
        items: Iterable[Known],
        *,
        checkpoint: str | None = None,
        done: int | None = None,
    ) -> None:
        """Remember objects and, atomically with them, how far the sync got."""
        ...

    def forget(self, source_id: int, keys: Iterable[str]) -> None: ...

    def other_holder(
        self, gallery: str, content_id: str, *, besides: tuple[int, str]
    ) -> tuple[SourceRecord, Known] | None: ...


class Coordination(Protocol):
    """Where the job state, the locks, the login limits, the audit log and the bucket
    feature's event queue, sync locks and sources catalog live."""

    shared: bool  # True when several web servers can share it (Redis)

    def job_files(self, gallery: str, root: Path) -> JobFiles: ...

    def take_job_lock(self, files: JobFiles, others: dict[str, JobFiles]) -> JobLock: ...

    def adopt_job_lock(self, *, lock_fd: int | None, lock_token: str | None) -> JobLock: ...

    def login_limiter(self, attempts: int, window: float) -> LoginLimiter: ...

    def audit_log(self) -> AuditLog: ...

    def event_queue(self) -> EventQueue: ...

    def sync_locks(self) -> SyncLocks: ...

    def catalog(self) -> SourceCatalog: ...
