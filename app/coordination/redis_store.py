"""Coordination in Redis, for several web servers behind one load balancer.

Keys (all under ``REDIS_PREFIX``, default ``lookalike``):

- ``reindex:lock``: the deployment's one-at-a-time reindex lock, a JSON value
  naming the gallery, host and job, with a lease the job renews;
- ``gallery:<name>:job`` / ``:job-last`` / ``:cancel``: a gallery's job state,
  its last successful job, a cancel request (JSON, as the files hold locally);
- ``gallery:<name>:writers`` / ``:switch``: the gallery's readers-writer lock;
- ``login:<sha256>``: failed logins of one (user, address), a sorted set of times;
- ``audit``: the newest audit lines (a capped list);
- ``events:*``, ``buckets:sync:*``: bucket events and sync locks (redis_buckets.py);
- ``catalog:*``: the bucket sources, their CSV labels and manifests (redis_catalog.py).

The job log (``reindex.log``) stays on the host that ran the job.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from app.coordination.base import CoordinationUnavailable
from app.coordination.leases import LeaseLock, ReadersWriterLock, Renewer
from app.jobs.state import GalleryBusy, JobFiles, JobRunning, JobState, died_message

log = logging.getLogger(__name__)

AUDIT_KEEP = 1000  # audit lines kept in Redis for the admin page


def connect(url: str, timeout: float) -> Any:
    """A Redis client whose connection failures are ``CoordinationUnavailable`` (a 503)."""
    import redis

    class Client(redis.Redis):
        def execute_command(self, *args: Any, **options: Any) -> Any:
            try:
                return super().execute_command(*args, **options)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                # Server replies (NOSCRIPT, ...) pass: redis-py handles them itself.
                raise CoordinationUnavailable(
                    "The coordination store (Redis, LOOKALIKE_REDIS_URL) cannot be reached: "
                    f"{exc}. Try again in a moment."
                ) from None

    return Client.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=True,
        health_check_interval=30,
    )


class RedisJobLock:
    """The deployment's reindex lock, held by this process (and renewed) or handed over."""

    pass_fds: tuple[int, ...] = ()

    def __init__(self, lock: LeaseLock, value: str, *, renew_here: bool) -> None:
        self.lock = lock
        self.value = value
        self.token = json.loads(value)["token"]
        self._renewer = (
            Renewer(lambda: lock.renew(value), lock.lease, "the reindex lock")
            if renew_here
            else None
        )

    def handoff_args(self) -> list[str]:
        return ["--lock-token", self.token]

    def handed_over(self, child: subprocess.Popen[bytes]) -> None:
        """Renew while the child lives too (it imports a lot before it renews itself)."""
        if self._renewer:
            self._renewer.stop()
            self._renewer = None
        lock, value = self.lock, self.value

        def watch() -> None:
            renewing = True
            while renewing:
                try:
                    child.wait(timeout=lock.lease / 3)
                    return  # ended: its lease lapses unless it released it
                except subprocess.TimeoutExpired:
                    try:
                        renewing = lock.renew(value)  # False: released (or lost) by the job
                    except CoordinationUnavailable:
                        continue  # Redis down: the child renews too
            child.wait()  # reap it when it ends (no zombie)

        threading.Thread(target=watch, name=f"renew-job-{child.pid}", daemon=True).start()

    def release(self) -> None:
        if self._renewer:
            self._renewer.stop()
            self._renewer = None
        self.lock.release(self.value)


class RedisJobFiles(JobFiles):
    """A gallery's job state and locks in Redis; ``root`` still holds the local job log."""

    def __init__(self, root: Path, owner: RedisCoordination, gallery: str) -> None:
        super().__init__(root)
        self.owner = owner
        self.gallery = gallery
        self.key = owner.key("gallery", gallery)

    def read(self) -> JobState:
        state = self._load("job")
        if state.active and not self.job_locked():
            state = self._load("job")  # it may have finished between the two looks
            if state.active:
                state = replace(
                    state,
                    phase="failed",
                    finished=state.finished or time.time(),
                    error=died_message(state),
                )
        return state

    def write(self, state: JobState) -> None:
        self.owner.client.set(f"{self.key}:job", json.dumps(state.to_json()))

    def last_success(self) -> JobState | None:
        state = self._load("job-last")
        return state if state.phase == "done" else None

    def record_success(self, state: JobState) -> None:
        self.owner.client.set(f"{self.key}:job-last", json.dumps(state.to_json()))

    def request_cancel(self, job_id: str) -> None:
        self.owner.client.set(f"{self.key}:cancel", json.dumps({"id": job_id, "at": time.time()}))

    def cancel_requested(self, job_id: str) -> bool:
        data = _parse(self.owner.client.get(f"{self.key}:cancel"))
        return bool(data) and data.get("id") in (job_id, "*")

    def clear_cancel(self) -> None:
        self.owner.client.delete(f"{self.key}:cancel")

    def job_locked(self) -> bool:
        holder = self.owner.holder()
        return bool(holder) and holder.get("gallery") == self.gallery

    def writes(self, *, timeout: float = 60.0) -> Any:
        return self._rw().writing(
            timeout=timeout,
            busy=lambda: GalleryBusy(
                "The gallery is being switched to a new index and stayed busy "
                f"for {timeout:.0f} s. Try again in a moment."
            ),
        )

    @contextmanager
    def frozen(
        self, *, cancelled: Callable[[], bool], waiting: Callable[[], None]
    ) -> Iterator[bool]:
        with self._rw().switching(cancelled=cancelled, waiting=waiting) as held:
            yield held

    def _rw(self) -> ReadersWriterLock:
        return ReadersWriterLock(
            self.owner.client, f"{self.key}:writers", f"{self.key}:switch", self.owner.lease
        )

    def _load(self, name: str) -> JobState:
        data = _parse(self.owner.client.get(f"{self.key}:{name}"))
        try:
            return JobState.from_json(data) if data else JobState()
        except TypeError:
            return JobState()


class RedisLoginLimiter:
    """Failed logins per (user, address) in a sliding window, shared by every server."""

    def __init__(self, owner: RedisCoordination, attempts: int, window: float) -> None:
        self.owner = owner
        self.attempts = attempts
        self.window = window

    def wait(self, key: tuple[str, str]) -> float:
        name, now = self._key(key), time.time()
        client = self.owner.client
        client.zremrangebyscore(name, "-inf", now - self.window)
        if client.zcard(name) < self.attempts:
            return 0.0
        oldest = client.zrange(name, -self.attempts, -self.attempts, withscores=True)
        return max(0.0, oldest[0][1] + self.window - now) if oldest else 0.0

    def failed(self, key: tuple[str, str]) -> None:
        name, now = self._key(key), time.time()
        self.owner.client.zadd(name, {f"{now}-{secrets.token_hex(4)}": now})
        self.owner.client.expire(name, max(1, int(self.window) + 1))

    def succeeded(self, key: tuple[str, str]) -> None:
        self.owner.client.delete(self._key(key))

    def _key(self, key: tuple[str, str]) -> str:
        digest = hashlib.sha256("\0".join(key).encode()).hexdigest()
        return self.owner.key("login", digest)


class RedisAuditLog:
    """The newest audit lines in a capped list every server reads."""

    def __init__(self, owner: RedisCoordination) -> None:
        self.owner = owner
        self.name = owner.key("audit")

    def append(self, line: str) -> None:
        try:
            self.owner.client.lpush(self.name, line)
            self.owner.client.ltrim(self.name, 0, AUDIT_KEEP - 1)
        except CoordinationUnavailable as exc:  # the action happened: it must not be undone
            log.error("could not store the audit entry in Redis: %s", exc.message)

    def lines(self, limit: int) -> list[str]:
        return list(self.owner.client.lrange(self.name, 0, limit - 1))


class RedisCoordination:
    """Everything several web servers must agree on, in one Redis."""

    shared = True

    def __init__(self, client: Any, *, prefix: str, lease: float) -> None:
        self.client = client
        self.prefix = prefix
        self.lease = lease
        self.job_lock = LeaseLock(client, self.key("reindex", "lock"), lease)

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def holder(self) -> dict[str, Any] | None:
        """Who holds the reindex lock: gallery, host, pid, token (None: nobody)."""
        return _parse(self.job_lock.holder())

    def job_files(self, gallery: str, root: Path) -> RedisJobFiles:
        return RedisJobFiles(root, self, gallery)

    def take_job_lock(self, files: JobFiles, others: dict[str, JobFiles]) -> RedisJobLock:
        from app.jobs.launch import running_message

        gallery = files.gallery if isinstance(files, RedisJobFiles) else ""
        value = json.dumps(
            {
                "token": secrets.token_hex(16),
                "gallery": gallery,
                "host": socket.gethostname(),
                "pid": os.getpid(),
            }
        )
        if self.job_lock.acquire(value):
            return RedisJobLock(self.job_lock, value, renew_here=True)
        holder = self.holder() or {}
        name = str(holder.get("gallery", ""))
        state = self.job_files(name, files.root).read()
        where = f" on {holder.get('host')}" if holder.get("host") else ""
        raise JobRunning(
            f"Gallery {name!r}: "
            + running_message(state)
            + f" It runs{where}; only one reindex runs at a time in this deployment."
        )

    def adopt_job_lock(self, *, lock_fd: int | None, lock_token: str | None) -> RedisJobLock:
        holder = self.holder()
        value = self.job_lock.holder()
        if not lock_token or not holder or holder.get("token") != lock_token or value is None:
            raise JobRunning(
                "This job's reindex lock lapsed before the job started (its lease "
                "ended). Start the reindex again."
            )
        return RedisJobLock(self.job_lock, value, renew_here=True)

    def login_limiter(self, attempts: int, window: float) -> RedisLoginLimiter:
        return RedisLoginLimiter(self, attempts, window)

    def audit_log(self) -> RedisAuditLog:
        return RedisAuditLog(self)

    def event_queue(self):  # type: ignore[no-untyped-def]
        from app.coordination.redis_buckets import RedisEventQueue

        return RedisEventQueue(self)

    def sync_locks(self):  # type: ignore[no-untyped-def]
        from app.coordination.redis_buckets import RedisSyncLocks

        return RedisSyncLocks(self)

    def catalog(self):  # type: ignore[no-untyped-def]
        from app.coordination.redis_catalog import RedisCatalog

        return RedisCatalog(self)


def _parse(raw: str | None) -> dict[str, Any] | None:
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
