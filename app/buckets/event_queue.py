"""The bucket-event queue of one machine: a SQLite file every local process shares.

With ``LOOKALIKE_REDIS_URL`` the queue lives in Redis instead, where every web
server sees it (app/coordination/redis_buckets.py); both have this shape.

The hook route only appends (one short transaction per request) and answers;
drainers in any process claim batches (``BEGIN IMMEDIATE``: one claimer at a
time), work, and delete what they finished. A claim older than ``stale_after``
seconds belongs to a drainer that died and is taken over; an event that failed
``MAX_ATTEMPTS`` times is dropped with a log line (a later sync still converges).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FILE_NAME = "bucket-events.sqlite"
CREATED, REMOVED = "created", "removed"
MAX_ATTEMPTS = 5

_READY: set[Path] = set()  # files whose schema this process has made sure of

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    received REAL NOT NULL,
    claimed_by TEXT NOT NULL DEFAULT '',
    claimed_at REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True)
class Event:
    """One object event: which object, and whether it was created or removed."""

    bucket: str
    key: str
    kind: str  # CREATED or REMOVED
    seq: int = 0
    claim: str = ""  # the claim's token, where the queue checks who finishes it (Redis)


class EventQueue:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def in_folder(cls, folder: str | Path) -> EventQueue:
        return cls(Path(folder) / FILE_NAME)

    @contextmanager
    def _db(self, *, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=60, isolation_level=None)) as db:
            if self.path not in _READY:  # once per file and process
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(SCHEMA)
                _READY.add(self.path)
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, fast appends
            db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def push(self, events: Iterable[Event]) -> int:
        rows = [(e.bucket, e.key, e.kind, time.time()) for e in events]
        if rows:
            with self._db() as db:
                db.executemany(
                    "INSERT INTO events (bucket, key, kind, received) VALUES (?, ?, ?, ?)", rows
                )
        return len(rows)

    def claim(self, worker: str, *, limit: int = 256, stale_after: float = 600.0) -> list[Event]:
        """Up to ``limit`` unclaimed (or abandoned) events, oldest first, now ``worker``'s."""
        now = time.time()
        with self._db(immediate=True) as db:
            rows = db.execute(
                "SELECT seq, bucket, key, kind FROM events WHERE claimed_by = '' "
                "OR claimed_at < ? ORDER BY seq LIMIT ?",
                (now - stale_after, limit),
            ).fetchall()
            db.executemany(
                "UPDATE events SET claimed_by = ?, claimed_at = ?, "
                "attempts = attempts + 1 WHERE seq = ?",
                [(worker, now, r[0]) for r in rows],
            )
        return [Event(bucket, key, kind, seq) for seq, bucket, key, kind in rows]

    def holding(self, events: list[Event]) -> AbstractContextManager[None]:
        """Nothing to renew: a claim is taken over only after ``stale_after`` seconds."""
        return nullcontext()

    def done(self, events: Iterable[Event]) -> None:
        with self._db() as db:
            db.executemany("DELETE FROM events WHERE seq = ?", [(e.seq,) for e in events])

    def retry_later(self, events: Iterable[Event]) -> None:
        """Give events back (a failed batch); drop those that failed too often."""
        seqs = [(e.seq,) for e in events]
        with self._db() as db:
            dropped = (
                db.execute(
                    f"SELECT bucket, key FROM events WHERE attempts >= "
                    f"{MAX_ATTEMPTS} AND seq IN ({','.join('?' * len(seqs))})",
                    [s for (s,) in seqs],
                ).fetchall()
                if seqs
                else []
            )
            for bucket, key in dropped:
                log.error(
                    "bucket event for s3://%s/%s failed %d times; dropped (a sync "
                    "will pick the object up)",
                    bucket,
                    key,
                    MAX_ATTEMPTS,
                )
            db.executemany(f"DELETE FROM events WHERE seq = ? AND attempts >= {MAX_ATTEMPTS}", seqs)
            db.executemany("UPDATE events SET claimed_by = '', claimed_at = 0 WHERE seq = ?", seqs)

    def pending(self) -> int:
        with self._db() as db:
            return int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])
