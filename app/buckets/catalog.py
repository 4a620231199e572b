"""What Lookalike knows about its bucket sources, in one SQLite file under instance/.

Tables: ``sources`` (gallery, location, endpoint, label rule, counters, sync
checkpoint and progress), ``labels`` (a CSV's object key -> label, kept so a
later sync labels new objects the same way) and ``objects`` (the manifest:
each listed object's ETag, size and content id, and what became of it).

Why SQLite in the instance folder: every process of a deployment (web workers,
CLI commands, background jobs) already shares that folder for its job files
and locks; a sync needs ordered keyset reads of the manifest (merged with the
bucket's sorted listing, so neither is held in memory) and small transactions
from several processes, which SQLite gives without another server. A connection
is opened per operation: sqlite3 connections must not cross threads.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from app.buckets.location import Location
from app.exceptions import NotFound

FILE_NAME = "buckets.sqlite"
ADDED, DUPLICATE, FAILED = "added", "duplicate", "failed"

_READY: set[Path] = set()  # files whose schema this process has made sure of

SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    id INTEGER PRIMARY KEY,
    gallery TEXT NOT NULL,
    bucket TEXT NOT NULL,
    prefix TEXT NOT NULL,
    endpoint TEXT NOT NULL DEFAULT '',
    label_rule TEXT NOT NULL DEFAULT '',
    seen INTEGER NOT NULL DEFAULT 0,
    indexed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    last_sync REAL NOT NULL DEFAULT 0,
    last_report TEXT NOT NULL DEFAULT '',
    checkpoint TEXT NOT NULL DEFAULT '',
    phase TEXT NOT NULL DEFAULT 'idle',
    done INTEGER NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    updated REAL NOT NULL DEFAULT 0,
    UNIQUE (gallery, bucket, prefix)
);
CREATE TABLE IF NOT EXISTS labels (
    source_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    label TEXT NOT NULL,
    PRIMARY KEY (source_id, key)
);
CREATE TABLE IF NOT EXISTS objects (
    source_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    etag TEXT NOT NULL,
    size INTEGER NOT NULL,
    content_id TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    PRIMARY KEY (source_id, key)
);
CREATE INDEX IF NOT EXISTS objects_by_content ON objects (content_id);
"""


@dataclass(frozen=True)
class SourceRecord:
    """One source of one gallery, with its counters and sync state."""

    id: int
    gallery: str
    bucket: str
    prefix: str
    endpoint: str = ""
    label_rule: str = ""  # "", "folder", "csv" or "meta:NAME"
    seen: int = 0
    indexed: int = 0
    failed: int = 0
    last_sync: float = 0.0
    last_report: str = ""
    checkpoint: str = ""  # last key of an unfinished sync: the next one resumes after it
    phase: str = "idle"  # idle, syncing, done, failed
    done: int = 0  # objects gone through by the running sync
    message: str = ""
    updated: float = 0.0

    @property
    def location(self) -> Location:
        return Location(self.bucket, self.prefix)


@dataclass(frozen=True)
class Known:
    """One object as the manifest last saw it."""

    key: str
    etag: str
    size: int
    content_id: str = ""
    status: str = ADDED  # ADDED, DUPLICATE or FAILED


class CatalogBase:
    """What the SQLite and Redis catalogs share: checks, messages and derived reads."""

    def by_id(self, source_id: int) -> SourceRecord:
        raise NotImplementedError

    def sources(self, gallery: str | None = None) -> list[SourceRecord]:
        raise NotImplementedError

    def known(self, source_id: int, *, after: str = "", limit: int = 1000) -> list[Known]:
        raise NotImplementedError

    def containing(self, bucket: str, key: str) -> list[SourceRecord]:
        """Every source (of any gallery) whose location holds ``bucket/key``."""
        return [s for s in self.sources() if s.location.contains(bucket, key)]

    def iter_known(self, source_id: int, *, after: str = "", page: int = 1000) -> Iterator[Known]:
        """Every manifest entry after ``after``, in key order, a page at a time."""
        while batch := self.known(source_id, after=after, limit=page):
            yield from batch
            after = batch[-1].key

    @staticmethod
    def settable(values: dict[str, Any]) -> dict[str, Any]:
        """``values`` for ``update``, names checked against the record's fields, plus
        the time of the change."""
        allowed = {f.name for f in fields(SourceRecord)} - {"id", "gallery", "bucket", "prefix"}
        if not values or not set(values) <= allowed:
            raise ValueError(f"cannot set {sorted(set(values) - allowed)}")
        return {**values, "updated": time.time()}

    @staticmethod
    def unknown(location: Location | None = None) -> NotFound:
        if location is None:
            return NotFound("There is no such source.")
        return NotFound(
            f"{location} is not a source of this gallery; add it first "
            f"(flask --app wsgi gallery add {location})."
        )


class Catalog(CatalogBase):
    """The sources, their labels and their manifests (``instance/buckets.sqlite``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def in_folder(cls, folder: str | Path) -> Catalog:
        return cls(Path(folder) / FILE_NAME)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=60)) as db:
            db.row_factory = sqlite3.Row
            if self.path not in _READY:  # once per file and process
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(SCHEMA)
                _READY.add(self.path)
            with db:  # one transaction, committed on success
                yield db

    # -- sources ------------------------------------------------------------------------

    def add(
        self, gallery: str, location: Location, *, endpoint: str = "", label_rule: str = ""
    ) -> SourceRecord:
        """Register a source, or change the endpoint and label rule of a known one."""
        with self._db() as db:
            db.execute(
                "INSERT INTO sources (gallery, bucket, prefix, endpoint, label_rule, updated) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (gallery, bucket, prefix) DO UPDATE "
                "SET endpoint = excluded.endpoint, label_rule = excluded.label_rule",
                (gallery, location.bucket, location.prefix, endpoint, label_rule, time.time()),
            )
        return self.get(gallery, location)

    def get(self, gallery: str, location: Location) -> SourceRecord:
        with self._db() as db:
            row = db.execute(
                "SELECT * FROM sources WHERE gallery = ? AND bucket = ? AND prefix = ?",
                (gallery, location.bucket, location.prefix),
            ).fetchone()
        if row is None:
            raise self.unknown(location)
        return _source(row)

    def by_id(self, source_id: int) -> SourceRecord:
        with self._db() as db:
            row = db.execute("SELECT * FROM sources WHERE id = ?", (source_id,)).fetchone()
        if row is None:
            raise self.unknown()
        return _source(row)

    def sources(self, gallery: str | None = None) -> list[SourceRecord]:
        with self._db() as db:
            rows = db.execute(
                "SELECT * FROM sources WHERE ? IS NULL OR gallery = ? "
                "ORDER BY gallery, bucket, prefix",
                (gallery, gallery),
            ).fetchall()
        return [_source(r) for r in rows]

    def update(self, source_id: int, **values: Any) -> None:
        """Set progress and result columns (names checked against the record's fields)."""
        values = self.settable(values)
        columns = ", ".join(f"{name} = ?" for name in values)
        with self._db() as db:
            db.execute(
                f"UPDATE sources SET {columns} WHERE id = ?",  # noqa: S608 - names checked
                (*values.values(), source_id),
            )

    def recount(self, source_id: int) -> SourceRecord:
        """Set seen/indexed/failed from the manifest."""
        with self._db() as db:
            counts = dict(
                db.execute(
                    "SELECT status, COUNT(*) FROM objects WHERE source_id = ? GROUP BY status",
                    (source_id,),
                ).fetchall()
            )
        self.update(
            source_id,
            seen=sum(counts.values()),
            indexed=counts.get(ADDED, 0) + counts.get(DUPLICATE, 0),
            failed=counts.get(FAILED, 0),
        )
        return self.by_id(source_id)

    # -- labels from a CSV ------------------------------------------------------------

    def set_labels(self, source_id: int, labels: Iterable[tuple[str, str]]) -> int:
        rows = list(labels)
        with self._db() as db:
            db.execute("DELETE FROM labels WHERE source_id = ?", (source_id,))
            db.executemany(
                "INSERT OR REPLACE INTO labels VALUES (?, ?, ?)",
                [(source_id, key, label) for key, label in rows],
            )
        return len(rows)

    def labels_for(self, source_id: int, keys: Iterable[str]) -> dict[str, str]:
        keys = list(keys)
        if not keys:
            return {}
        with self._db() as db:
            marks = ",".join("?" * len(keys))
            rows = db.execute(
                f"SELECT key, label FROM labels WHERE source_id = ? AND key IN ({marks})",
                (source_id, *keys),
            ).fetchall()  # noqa: S608
        return {r["key"]: r["label"] for r in rows}

    # -- the manifest -----------------------------------------------------------------

    def known(self, source_id: int, *, after: str = "", limit: int = 1000) -> list[Known]:
        """Up to ``limit`` manifest entries with keys after ``after``, in key order."""
        with self._db() as db:
            rows = db.execute(
                "SELECT * FROM objects WHERE source_id = ? AND key > ? ORDER BY key LIMIT ?",
                (source_id, after, limit),
            ).fetchall()
        return [_known(r) for r in rows]

    def known_one(self, source_id: int, key: str) -> Known | None:
        with self._db() as db:
            row = db.execute(
                "SELECT * FROM objects WHERE source_id = ? AND key = ?", (source_id, key)
            ).fetchone()
        return _known(row) if row else None

    def record(
        self,
        source_id: int,
        items: Iterable[Known],
        *,
        checkpoint: str | None = None,
        done: int | None = None,
    ) -> None:
        """Remember objects (and, in the same transaction, how far the sync got)."""
        with self._db() as db:
            db.executemany(
                "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?, ?)",
                [(source_id, k.key, k.etag, k.size, k.content_id, k.status) for k in items],
            )
            if checkpoint is not None:
                db.execute(
                    "UPDATE sources SET checkpoint = ?, done = COALESCE(?, done), "
                    "updated = ? WHERE id = ?",
                    (checkpoint, done, time.time(), source_id),
                )

    def forget(self, source_id: int, keys: Iterable[str]) -> None:
        with self._db() as db:
            db.executemany(
                "DELETE FROM objects WHERE source_id = ? AND key = ?",
                [(source_id, key) for key in keys],
            )

    def other_holder(
        self, gallery: str, content_id: str, *, besides: tuple[int, str]
    ) -> tuple[SourceRecord, Known] | None:
        """Another object of the gallery with this content (its source and entry), if
        any: where a row goes when the object it points at is gone but a copy remains."""
        with self._db() as db:
            row = db.execute(
                "SELECT o.source_id AS sid, o.* FROM objects o JOIN sources s "
                "ON s.id = o.source_id WHERE s.gallery = ? AND o.content_id = ? AND "
                "o.status != ? AND NOT (o.source_id = ? AND o.key = ?) ORDER BY o.key LIMIT 1",
                (gallery, content_id, FAILED, *besides),
            ).fetchone()
        return (self.by_id(row["sid"]), _known(row)) if row else None


def _source(row: sqlite3.Row) -> SourceRecord:
    return SourceRecord(**{name: row[name] for name in row.keys()})  # noqa: SIM118


def _known(row: sqlite3.Row) -> Known:
    return Known(row["key"], row["etag"], row["size"], row["content_id"], row["status"])
