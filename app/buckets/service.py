"""Bucket sources for views and commands: the catalog, clients, locks and syncers of this app.

Everything here works on the current gallery through ``app.extensions``
(``serving()``, ``images()``), so a request or command for another gallery gets
that gallery's collection, encoder and sources.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import current_app
from minio import Minio

from app.buckets.catalog import SourceRecord
from app.buckets.drain import Drainer
from app.buckets.endpoints import Endpoints
from app.buckets.inplace import ObjectLocation
from app.buckets.listing import STAT_THREADS
from app.buckets.location import Location, normalize_prefix
from app.buckets.reading import LabelRule
from app.buckets.s3errors import s3_errors
from app.buckets.sync import Syncer
from app.coordination import coordination
from app.coordination.base import EventQueue, SourceCatalog
from app.exceptions import BadRequest, NotFound
from app.jobs.state import gallery_writes
from app.serving import Snapshot

CSV_LIMIT = 10_000_000  # rows


def catalog() -> SourceCatalog:
    """The sources catalog of the coordination store: ``instance/buckets.sqlite``, or
    Redis shared by every web server (app/coordination). Each source is filed under
    its gallery's alias."""
    return coordination().catalog()


def event_queue() -> EventQueue:
    return coordination().event_queue()


def drainer() -> Drainer:
    return current_app.extensions["lookalike.bucket_drainer"].get()


def endpoints() -> Endpoints:
    return current_app.extensions["lookalike.s3_endpoints"].get()


def client(source: SourceRecord) -> Minio:
    return endpoints().client(source.endpoint)


def gallery() -> str:
    """The name the current gallery's sources are filed under: its serving alias."""
    from app.extensions import serving

    return serving().store.alias


@contextmanager
def writes() -> Iterator[Snapshot]:
    """Hold the gallery lock shared (as uploads do) and write on a fresh snapshot."""
    from app.extensions import serving
    from app.galleries.current import job_files

    with gallery_writes(job_files(), timeout=600):
        yield serving().snapshot(fresh=True)


def add_source(
    location: Location, *, endpoint: str = "", label_rule: str = "", labels_csv: Path | None = None
) -> SourceRecord:
    """Register (or update) a source of the current gallery, with its CSV labels."""
    endpoints().check(endpoint)
    _not_the_image_store(location, endpoint)
    rule = LabelRule.parse("csv" if labels_csv else label_rule)
    source = catalog().add(gallery(), location, endpoint=endpoint, label_rule=rule)
    if labels_csv is not None:
        catalog().set_labels(source.id, read_labels_csv(labels_csv, location))
    return source


def _not_the_image_store(location: Location, endpoint: str) -> None:
    """Lookalike's own bucket holds originals and thumbnails by hash: indexing it as a
    source would add every thumbnail as an image."""
    store = _images()
    bucket, prefix = getattr(store, "bucket", None), getattr(store, "prefix", "")
    if (
        endpoint == ""
        and store.backend == "s3"
        and bucket == location.bucket
        and (prefix.startswith(location.prefix) or location.prefix.startswith(prefix))
    ):
        raise BadRequest(
            f"{location} overlaps Lookalike's own image store ({store.description}); "
            "choose a bucket or prefix of your photos."
        )


def read_labels_csv(path: Path, location: Location) -> Iterator[tuple[str, str]]:
    """``key,label`` rows (a ``key,label`` header is skipped); keys are full object keys
    or relative to the source's prefix."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for number, row in enumerate(csv.reader(handle), 1):
            if not row or not any(cell.strip() for cell in row):
                continue
            if number == 1 and [c.strip().lower() for c in row[:2]] == ["key", "label"]:
                continue
            if len(row) < 2 or number > CSV_LIMIT:
                raise BadRequest(f"{path}: row {number} needs key,label; got {row!r}.")
            key = row[0].strip().lstrip("/")
            normalize_prefix(key)  # the same checks as a prefix: no '..', no control chars
            if not key.startswith(location.prefix):
                key = location.prefix + key
            yield key, row[1].strip()


def syncer(source: SourceRecord, **hooks: Any) -> Syncer:
    cfg = current_app.config
    return Syncer(
        catalog(),
        source,
        client(source),
        _images(),
        writes,
        locks=coordination().sync_locks(),
        batch_size=int(cfg["BATCH_SIZE"]),
        max_pixels=int(cfg["MAX_IMAGE_PIXELS"]),
        **hooks,
    )


def _images() -> Any:
    from app.extensions import images

    return images()


def describe(source: SourceRecord) -> str:
    """One line about a source, for the CLI."""
    last = (
        time.strftime("%Y-%m-%d %H:%M", time.localtime(source.last_sync))
        if source.last_sync
        else "never"
    )
    rule = f", labels {source.label_rule}" if source.label_rule else ""
    resume = f", resumes after {source.checkpoint}" if source.checkpoint else ""
    return (
        f"{source.location}{rule}: {source.seen} objects seen, {source.indexed} indexed, "
        f"{source.failed} failed; last sync {last} ({source.phase}){resume}"
    )


def missing_objects(in_place: dict[str, ObjectLocation]) -> dict[str, str]:
    """Which in-place rows' objects are gone (row id -> s3://bucket/key), for gallery check."""
    clients = endpoints()

    def gone(where: ObjectLocation) -> bool:
        try:
            with s3_errors(f"s3://{where.bucket}/{where.key}"):
                clients.client(where.endpoint).stat_object(where.bucket, where.key)
        except NotFound:
            return True
        return False

    with ThreadPoolExecutor(STAT_THREADS, thread_name_prefix="bucket-check") as pool:
        flags = pool.map(gone, in_place.values())
        return {
            id_: f"s3://{w.bucket}/{w.key}"
            for (id_, w), missing in zip(in_place.items(), flags, strict=True)
            if missing
        }
