"""A `limits` storage in one SQLite file: counters shared by every worker of a host.

The embedded default has no Redis and no memcached, and per-process memory would
multiply a limit by the number of gunicorn workers. SQLite is in the standard
library, locks the file across processes, and a fixed-window counter is one short
write transaction. Counters need no durability (``synchronous=OFF``, WAL). For
several hosts, set LOOKALIKE_RATELIMIT_STORAGE to a Redis URI instead.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

from limits.storage import Storage

SCHEME = "lookalike-sqlite"
BUSY_TIMEOUT_MS = 5000


class SQLiteStorage(Storage):
    """Fixed-window counters: ``lookalike-sqlite:///absolute/path/ratelimit.sqlite``."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options: object) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        self.path = Path(uri.removeprefix(f"{SCHEME}://"))
        self._local = threading.local()

    @property
    def base_exceptions(self) -> type[Exception]:
        return sqlite3.Error

    def _db(self) -> sqlite3.Connection:
        """One connection per thread and process (never shared across a fork)."""
        db = getattr(self._local, "db", None)
        if db is None or getattr(self._local, "pid", 0) != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=OFF")
            db.execute(
                "CREATE TABLE IF NOT EXISTS counters "
                "(key TEXT PRIMARY KEY, value INTEGER NOT NULL, expiry REAL NOT NULL)"
            )
            self._local.db, self._local.pid = db, os.getpid()
        return db

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        db = self._db()
        db.execute("BEGIN IMMEDIATE")  # one writer at a time, across processes
        try:
            db.execute("DELETE FROM counters WHERE key = ? AND expiry <= ?", (key, now))
            db.execute(
                "INSERT INTO counters (key, value, expiry) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
                (key, amount, now + expiry),
            )
            (value,) = db.execute("SELECT value FROM counters WHERE key = ?", (key,)).fetchone()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return int(value)

    def get(self, key: str) -> int:
        row = (
            self._db()
            .execute("SELECT value FROM counters WHERE key = ? AND expiry > ?", (key, time.time()))
            .fetchone()
        )
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        row = (
            self._db()
            .execute("SELECT expiry FROM counters WHERE key = ? AND expiry > ?", (key, time.time()))
            .fetchone()
        )
        return float(row[0]) if row else time.time()

    def check(self) -> bool:
        self._db().execute("SELECT 1")
        return True

    def reset(self) -> int | None:
        return self._db().execute("DELETE FROM counters").rowcount

    def clear(self, key: str) -> None:
        self._db().execute("DELETE FROM counters WHERE key = ?", (key,))

    def prune(self) -> None:
        """Drop expired counters (called now and then, so the file stays small)."""
        self._db().execute("DELETE FROM counters WHERE expiry <= ?", (time.time(),))
