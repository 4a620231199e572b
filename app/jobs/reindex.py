"""Reindex: re-encode every gallery image into a new collection, then move the alias.

Steps, each safe to interrupt: encode every original through the ingest pipeline
into a new collection stamped with the new model; build its index; hold the
gallery still, copy in what changed meanwhile and move the alias in one
``alter_alias``; drop older generations, keeping the previous one for rollback.
Until the switch the old collection serves (docs/architecture.md, "Reindex").
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from app.buckets.inplace import ObjectLocation, location_of
from app.config import Config
from app.copies.service import calibrate_new_collection
from app.exceptions import BadRequest, LookalikeError, NotFound
from app.gallery.ingest import REJECTED, Ingestor, Outcome
from app.gallery.keys import key_id, original_name
from app.gallery.sources import Source
from app.gallery.storage import ImageStore
from app.jobs.state import MAX_REASONS, JobFiles, JobState
from app.jobs.switch import Cancelled, Steps, drop_quietly, move_alias, switch_collection
from app.model.encoder import Encoder
from app.serving import stamp_of
from app.vectors.records import Entry
from app.vectors.store import VectorStore

log = logging.getLogger(__name__)

WRITE_INTERVAL = 0.25  # seconds between progress writes (phase changes are written at once)
CANCEL_CHECK_INTERVAL = 0.5
WAITING = "waiting for uploads in progress to finish"


class Progress:
    """The job's state, written to the state file as it changes, and shown to listeners."""

    def __init__(
        self, files: JobFiles, state: JobState,
        on_change: Callable[[JobState], None] | None = None,
    ) -> None:
        self.files = files
        self._state = state
        self._on_change = on_change
        self._written = 0.0
        self._cancel_checked = 0.0
        self._encode_started = 0.0
        self.signalled = False
        self.failed_ids: set[str] = set()

    @property
    def state(self) -> JobState:
        return self._state

    def set(self, **changes: Any) -> JobState:
        """Change the state and write it now (phase changes, messages)."""
        if changes.get("phase") == "encoding":
            self._encode_started = time.monotonic()
        self._state = replace(self._state, **changes)
        self._write()
        return self._state

    def finish(self, phase: str, **changes: Any) -> JobState:
        return self.set(phase=phase, finished=time.time(), eta_s=None, **changes)

    def outcome(self, outcome: Outcome) -> None:
        """Count one encoded (or skipped) image; write at most every WRITE_INTERVAL."""
        state = self._state
        done, failed, failures = state.done + 1, state.failed, state.failures
        if outcome.status == REJECTED:
            failed += 1
            self.failed_ids.add(key_id(outcome.name))
            if len(failures) < MAX_REASONS:
                failures = (*failures, f"{outcome.name}: {outcome.reason}")
        elapsed = time.monotonic() - self._encode_started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = max(state.total - done, 0) / rate if rate > 0 else None
        self._state = replace(state, done=done, failed=failed, failures=failures,
                              rate=round(rate, 2), eta_s=None if eta is None else round(eta, 1))
        if time.monotonic() - self._written >= WRITE_INTERVAL:
            self._write()
        elif self._on_change:
            self._on_change(self._state)

    def cancelled(self) -> bool:
        if self.signalled:
            return True
        now = time.monotonic()
        if now - self._cancel_checked < CANCEL_CHECK_INTERVAL:
            return False
        self._cancel_checked = now
        return self.files.cancel_requested(self._state.id)

    def check(self) -> None:
        if self.cancelled():
            raise Cancelled

    def _write(self) -> None:
        self.files.write(self._state)
        self._written = time.monotonic()
        if self._on_change:
            self._on_change(self._state)


class Reindexer:
    """Runs one reindex or rollback; the caller holds the job lock."""

    def __init__(
        self,
        vectors: VectorStore,
        images: ImageStore,
        *,
        load: Callable[[str], Encoder],
        progress: Progress,
        batch_size: int = 0,
        max_pixels: int = Config.MAX_IMAGE_PIXELS,
        read_in_place: Callable[[ObjectLocation], bytes] | None = None,
        copy_sample: int = Config.COPY_CALIBRATION_SAMPLE,
        encode_sources: Callable[..., None] | None = None,
    ) -> None:
        # The encode step; None: the in-process ingest. With --ray, app/cluster/run.py's
        # reindex_step(encoder, vectors, sources, collection, batch_size, on_outcome).
        self.encode_sources = encode_sources
        self.vectors = vectors  # reached through the serving alias
        self.copy_sample = copy_sample  # images the copy threshold is calibrated on
        self.images = images
        self.read_in_place = read_in_place  # originals that stay in a bucket (app/buckets)
        self.load = load
        self.progress = progress
        self.batch_size = batch_size
        self.max_pixels = max_pixels

    def execute(self) -> JobState:
        """Run the job of ``progress.state.kind``; never leaves the state "active"."""
        p = self.progress
        with _cancel_on_sigterm(p):
            try:
                return self.rollback() if p.state.kind == "rollback" else self.reindex()
            except (Cancelled, KeyboardInterrupt):
                return p.finish("cancelled", message="Cancelled. The alias was not moved: "
                                "searches use the same collection as before.")
            except LookalikeError as exc:
                return p.finish("failed", error=exc.message)
            except Exception as exc:  # noqa: BLE001 - the job's top: report, never hang "active"
                log.exception("reindex failed")
                return p.finish("failed", error=f"{type(exc).__name__}: {exc}")

    # -- the two jobs ----------------------------------------------------------------

    def reindex(self) -> JobState:
        p = self.progress
        p.set(phase="loading", message=f"loading the model {p.state.model}")
        encoder = self.load(p.state.model)
        p.check()
        old = self.vectors.resolve()
        self.drop_leftovers(old)

        def fill(new: str) -> None:
            total = self.vectors.count(old) if old else 0
            p.set(phase="encoding", old_collection=old or "", new_collection=new, total=total,
                  message="")
            if old:
                self.encode(encoder, self.vectors.iterate(collection=old), new)

        new = switch_collection(self.vectors, stamp_of(encoder), fill, files=p.files,
                                steps=JobSteps(self, encoder)).collection
        self.drop_leftovers(new)
        p.set(message="calibrating the copy threshold")
        calibrate_new_collection(encoder, self.vectors, new, self.images,
                                 sample=self.copy_sample, max_pixels=self.max_pixels)
        expected = p.state.total - p.state.failed
        rows = self.vectors.count(new)
        note = "" if rows >= expected else f" ({expected - rows} fewer rows than expected)"
        return p.finish("done", message=f"Serving {new}: {rows} images{note}.")

    def rollback(self) -> JobState:
        p = self.progress
        serving = self.vectors.resolve()
        target = rollback_target(self.vectors, serving)
        if serving is None or target is None:
            raise BadRequest("There is no previous collection to roll back to.")
        stamp = self.vectors.stamp_of(target)
        model = stamp.name if stamp else p.state.model
        p.set(phase="loading", model=model, old_collection=serving, new_collection=target,
              total=self.vectors.count(serving), message=f"loading the model {model}")
        encoder = self.load(model)
        self.vectors.check(stamp_of(encoder), target)
        p.check()
        p.set(phase="switching", done=p.state.total)
        move_alias(self.vectors, p.files, target, JobSteps(self, encoder))
        return p.finish("done", message=f"Rolled back: serving {target} (model {model}).")

    # -- steps -----------------------------------------------------------------------

    def encode(self, encoder: Encoder, entries: Iterable[Entry], collection: str) -> None:
        """Re-encode gallery rows into ``collection`` through the ingest pipeline."""
        # Originals and thumbnails exist already: the pipeline only encodes.
        ingestor = Ingestor(encoder, self.vectors, self.images, batch_size=self.batch_size,
                            max_pixels=self.max_pixels, collection=collection,
                            skip_existing=False, store_images=False)

        def counted(outcome: Outcome) -> None:
            self.progress.outcome(outcome)
            self.progress.check()

        sources = (self._source(e) for e in entries)
        if self.encode_sources is not None:
            self.encode_sources(encoder, self.vectors, sources, collection, self.batch_size,
                                counted)
            return
        ingestor.run(sources, counted)

    def catch_up(self, encoder: Encoder, source: str, target: str) -> tuple[int, int]:
        """Make ``target`` hold the rows of ``source``: re-encode new or relabelled ones,
        delete removed ones. Images that failed in this job are not tried again."""
        wanted = {e.id: e for e in self.vectors.iterate(collection=source)}
        have = {e.id: _comparable(e) for e in self.vectors.iterate(collection=target)}
        removed = [i for i in have if i not in wanted]
        changed = [e for i, e in wanted.items()
                   if have.get(i) != _comparable(e) and i not in self.progress.failed_ids]
        self.vectors.delete(removed, target)
        if changed:
            self.progress.set(total=self.progress.state.total + len(changed))
            self.encode(encoder, changed, target)
        return len(changed), len(removed)

    def drop_leftovers(self, serving: str | None) -> list[str]:
        """Drop generations that are neither serving nor the rollback target: the
        collection before the previous one, and half-built ones of killed jobs."""
        keep = {serving, rollback_target(self.vectors, serving)}
        dropped = [c for c in self.vectors.generations() if c not in keep]
        for collection in dropped:
            drop_quietly(self.vectors, collection)
        return dropped

    def _source(self, entry: Entry) -> Source:
        where = location_of(entry.metadata)

        def read() -> bytes:
            try:
                if where is not None and self.read_in_place is not None:
                    return self.read_in_place(where)
                return self.images.get(original_name(entry.key))
            except NotFound as exc:
                raise BadRequest(exc.message if where else
                                 "the original is missing from the image store") from None

        return Source(entry.key, read, entry.label, entry.metadata)


class JobSteps(Steps):
    """The switch's steps as a job shows them, and its catch-up by re-encoding."""

    def __init__(self, job: Reindexer, encoder: Encoder) -> None:
        self.job = job
        self.encoder = encoder
        self.progress = job.progress

    def indexing(self) -> None:
        self.progress.set(phase="indexing", message="building the HNSW index", eta_s=None)

    def switching(self) -> None:
        self.progress.set(phase="switching", message=WAITING, eta_s=None)

    def waiting(self) -> None:
        self.progress.set(message=WAITING)

    def catch_up(self, old: str, new: str) -> None:
        self.progress.set(message="adding images changed during the reindex")
        added, removed = self.job.catch_up(self.encoder, old, new)
        if added or removed:
            self.job.vectors.wait_for_index(new)  # persist the few rows written late
            self.progress.set(message=f"caught up: {added} added or changed, {removed} "
                              "removed during the reindex")

    def cancelled(self) -> bool:
        return self.progress.cancelled()


def rollback_target(vectors: VectorStore, serving: str | None) -> str | None:
    """The newest other generation that has served searches: where a rollback goes."""
    for collection in reversed(vectors.generations()):
        if collection != serving and vectors.served_since(collection):
            return collection
    return None


def _comparable(entry: Entry) -> tuple[str, dict[str, Any]]:
    """What a re-encoded row carries over (the ingest pipeline drops empty metadata)."""
    return entry.label, {k: v for k, v in entry.metadata.items() if v not in (None, "")}


@contextmanager
def _cancel_on_sigterm(progress: Progress) -> Iterator[None]:
    """SIGTERM (``kill PID``, a stopping container) cancels cleanly instead of killing."""

    def handle(signum: int, frame: Any) -> None:
        progress.signalled = True

    try:
        previous = signal.signal(signal.SIGTERM, handle)
    except ValueError:  # not the main thread (tests): cancel by file only
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
