"""Sync a source: its bucket's listing merged with its manifest, changes applied in chunks.

Both sides are streamed in key order (the listing page by page, the manifest by
keyset pages), so memory stays flat whatever the bucket's size. Each key is new
(index it), changed (its ETag differs: remove the old content, index the new),
gone (remove it) or unchanged. Changes are applied a chunk at a time under the
gallery lock, on a fresh snapshot (a reindex may have switched collections
meanwhile); after each chunk the manifest and the checkpoint (the chunk's last
key) are written in one transaction. An interrupted sync resumes after its
checkpoint; what was done before it is in the manifest, so nothing is indexed
twice, and a sync of an unchanged bucket changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

from minio import Minio

from app.buckets.catalog import Known, SourceRecord
from app.buckets.changes import Changes, OnRay, Tally
from app.buckets.listing import ObjectRef, is_image_key, list_images, stat_images
from app.config import Config
from app.coordination.base import SourceCatalog, SyncLocks
from app.exceptions import LookalikeError
from app.gallery.ingest import Outcome
from app.gallery.storage import ImageStore
from app.serving import Snapshot

NEW, CHANGED, GONE, SAME = "new", "changed", "gone", "same"
CHUNK_OBJECTS = 256  # objects to index per chunk (one lock hold, one checkpoint)
CHUNK_STEPS = 5000  # keys gone through per chunk when little changes

_COUNTERS = {NEW: "new", CHANGED: "changed", GONE: "gone", SAME: "unchanged"}
Writes = Callable[[], AbstractContextManager[Snapshot]]


@dataclass(frozen=True)
class Step:
    kind: str  # NEW, CHANGED, GONE or SAME
    key: str
    ref: ObjectRef | None = None  # the object as listed (not for GONE)
    known: Known | None = None  # the manifest's entry (not for NEW)


@dataclass
class SyncReport:
    """What a sync found and did."""

    location: str
    dry_run: bool = False
    resumed_after: str = ""
    listed: int = 0
    new: int = 0
    changed: int = 0
    gone: int = 0
    unchanged: int = 0
    tally: Tally = field(default_factory=Tally)
    seconds: float = 0.0

    def count(self, step: Step) -> None:
        if step.kind != GONE:
            self.listed += 1
        name = _COUNTERS[step.kind]
        setattr(self, name, getattr(self, name) + 1)

    def summary(self) -> str:
        t = self.tally
        if self.dry_run:
            return (
                f"{self.location}: {self.listed} objects; would index {self.new} new and "
                f"{self.changed} changed, remove {self.gone} gone; {self.unchanged} "
                "unchanged."
            )
        resumed = f" (resumed after {self.resumed_after})" if self.resumed_after else ""
        return (
            f"{self.location}{resumed}: {self.listed} objects; {self.new} new, "
            f"{self.changed} changed, {self.gone} gone, {self.unchanged} unchanged. "
            f"Indexed {t.added}, already in the gallery {t.duplicates}, failed {t.failed}, "
            f"removed {t.removed} rows, re-pointed {t.repointed}, in {self.seconds:.1f} s."
        )


def plan(listing: Iterator[ObjectRef], known: Iterator[Known]) -> Iterator[Step]:
    """Merge two key-ordered streams into steps, in key order."""
    ref, old = next(listing, None), next(known, None)
    while ref is not None or old is not None:
        if old is None or (ref is not None and ref.key < old.key):
            yield Step(NEW, ref.key, ref=ref)  # type: ignore[union-attr]
            ref = next(listing, None)
        elif ref is None or old.key < ref.key:
            yield Step(GONE, old.key, known=old)
            old = next(known, None)
        else:
            kind = SAME if ref.etag == old.etag else CHANGED
            yield Step(kind, ref.key, ref=ref, known=old)
            ref, old = next(listing, None), next(known, None)


def _step(key: str, ref: ObjectRef | None, known: Known | None) -> Step | None:
    if ref is None:
        return Step(GONE, key, known=known) if known is not None else None
    if known is None:
        return Step(NEW, key, ref=ref)
    return Step(SAME if ref.etag == known.etag else CHANGED, key, ref=ref, known=known)


class Syncer:
    """Runs syncs (and event batches) of one source of one gallery."""

    def __init__(
        self,
        catalog: SourceCatalog,
        source: SourceRecord,
        client: Minio,
        images: ImageStore,
        writes: Writes,
        *,
        locks: SyncLocks,
        batch_size: int = 0,
        max_pixels: int = Config.MAX_IMAGE_PIXELS,
        chunk: int = CHUNK_OBJECTS,
        on_step: Callable[[Step], None] | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
        after_chunk: Callable[[SyncReport], None] | None = None,
        on_ray: OnRay | None = None,
    ) -> None:
        self.catalog = catalog
        self.source = source
        self.client = client
        self.images = images
        self.writes = writes
        self.locks = locks
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        self.chunk = chunk
        self.on_step = on_step
        self.on_outcome = on_outcome
        self.after_chunk = after_chunk
        self.on_ray = on_ray  # index new and changed objects on Ray instead of in process

    def sync(self, *, dry_run: bool = False, restart: bool = False) -> SyncReport:
        """Bring the gallery to the bucket's content under the source's location."""
        started = time.perf_counter()
        with self.running():
            source = self.catalog.by_id(self.source.id)
            after = "" if restart or dry_run else source.checkpoint
            report = SyncReport(str(source.location), dry_run=dry_run, resumed_after=after)
            if not dry_run:
                self.catalog.update(
                    source.id,
                    phase="syncing",
                    done=0,
                    checkpoint=after,
                    message=f"resuming after {after}" if after else "",
                )
            try:
                self._run(after, report)
            except LookalikeError as exc:
                self._finish(report, started, "failed", exc.message)
                raise
            except BaseException:
                self._finish(report, started, "failed", "interrupted; the next sync resumes")
                raise
            self._finish(report, started, "done", "")
        return report

    def _run(self, after: str, report: SyncReport) -> None:
        listing = list_images(self.client, self.source.location, after=after)
        steps = plan(listing, self.catalog.iter_known(self.source.id, after=after))
        pending: list[Step] = []
        indexing = 0
        for step in steps:
            report.count(step)
            if self.on_step:
                self.on_step(step)
            if report.dry_run:
                continue
            pending.append(step)
            indexing += step.kind in (NEW, CHANGED)
            if indexing >= self.chunk or len(pending) >= CHUNK_STEPS:
                self.apply(pending, report)
                pending, indexing = [], 0
        if pending:
            self.apply(pending, report)

    def reconcile(self, keys: list[str]) -> SyncReport:
        """Bring single objects up to date (bucket events): each key is looked up in the
        bucket, so a late or repeated event does no harm. The checkpoint is left alone."""
        report = SyncReport(str(self.source.location))
        wanted = [
            k
            for k in sorted(set(keys))
            if self.source.location.contains(self.source.bucket, k) and is_image_key(k)
        ]
        steps = []
        for key, ref in zip(
            wanted, stat_images(self.client, self.source.bucket, wanted), strict=True
        ):
            known = self.catalog.known_one(self.source.id, key)
            step = _step(key, ref, known)
            if step is not None:
                report.count(step)
                steps.append(step)
        if steps:
            self.apply(steps, report, checkpoint=False)
            self.catalog.recount(self.source.id)
        return report

    def apply(self, steps: list[Step], report: SyncReport, *, checkpoint: bool = True) -> None:
        """One chunk: removals, then indexing, then the manifest and the checkpoint."""
        changed = [s for s in steps if s.kind != SAME]
        known: list[Known] = []
        if changed:
            with self.writes() as snap:
                changes = Changes(
                    self.catalog,
                    self.source,
                    self.client,
                    self.images,
                    snap.encoder,
                    snap.vectors,
                    gallery=self.source.gallery,
                    batch_size=self.batch_size,
                    max_pixels=self.max_pixels,
                    on_ray=self.on_ray,
                )
                changes.remove(
                    (s.known for s in changed if s.kind in (CHANGED, GONE) and s.known is not None),
                    report.tally,
                )
                known = changes.index(
                    [s.ref for s in changed if s.kind in (NEW, CHANGED) and s.ref is not None],
                    report.tally,
                    self.on_outcome,
                )
        self.catalog.record(
            self.source.id,
            known,
            checkpoint=steps[-1].key if checkpoint else None,
            done=report.listed,
        )
        if self.after_chunk:
            self.after_chunk(report)

    def _finish(self, report: SyncReport, started: float, phase: str, error: str) -> None:
        report.seconds = time.perf_counter() - started
        if report.dry_run:
            return
        values = {"phase": phase, "message": error or report.summary(), "done": report.listed}
        if phase == "done":
            values.update(checkpoint="", last_sync=time.time(), last_report=report.summary())
        self.catalog.update(self.source.id, **values)
        self.catalog.recount(self.source.id)

    @contextmanager
    def running(self) -> Iterator[None]:
        """One sync per source at a time, across processes and, with Redis, hosts."""
        with self.locks.holding(self.source):
            yield
