"""What the admin pages do, over explicit collaborators: stats, upload, browse, edit, delete.

Writes run under the shared gallery lock (see ``app.jobs.state``) and on a
fresh serving snapshot, so an image added while a reindex switches lands in the
collection that serves from then on, encoded by that collection's model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from werkzeug.datastructures import FileStorage

from app.copies.decision import CopyJudge, CopyRule
from app.copies.threshold import read_calibration
from app.copies.upload import CopyCheck
from app.exceptions import BadRequest, LookalikeError, NotFound
from app.gallery.ingest import REJECTED, Ingestor, Outcome, Report
from app.gallery.keys import original_name, thumb_name
from app.gallery.sources import Source, zip_sources
from app.gallery.storage import ImageStore
from app.jobs.reindex import rollback_target
from app.jobs.state import JobFiles, JobState, gallery_writes
from app.serving import Serving
from app.vectors.records import Entry
from app.vectors.store import VectorStore


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str


@dataclass(frozen=True)
class Overview:
    """Everything the admin front page shows about the gallery and its index."""

    alias: str
    configured_model: str
    milvus: Health
    storage: Health
    images: int | None = None
    collection: str | None = None
    serving_model: str = ""
    dim: int | None = None
    fingerprint: str = ""
    created: str = ""
    index_type: str = ""
    metric: str = ""
    index_params: dict[str, Any] = field(default_factory=dict)
    index_state: str = ""
    rollback_to: str | None = None
    rollback_model: str = ""
    last_reindex: JobState | None = None
    milvus_warning: str = ""  # why the gallery is on Milvus Lite, whose search slows with size
    copy_threshold: str = ""  # calibrated threshold and its figures, or "default (not calibrated)"

    @property
    def model_differs(self) -> bool:
        return bool(self.serving_model) and self.serving_model != self.configured_model


@dataclass(frozen=True)
class GalleryPage:
    entries: list[Entry]
    start: int  # 0-based position of the first entry, for "images 49-96"
    next_after: str | None  # cursor of the next page, None on the last


def overview(
    get_serving: Any, images: ImageStore, *, configured_model: str, files: JobFiles,
    milvus_warning: str = "",
) -> Overview:
    """Stats that degrade piece by piece: a down Milvus still shows storage and the job."""
    overview = _overview(get_serving, images, configured_model=configured_model, files=files)
    return replace(overview, milvus_warning=milvus_warning)


def _overview(
    get_serving: Any, images: ImageStore, *, configured_model: str, files: JobFiles
) -> Overview:
    storage = _health(images.ping, images.description)
    last = files.last_success()
    try:
        store: VectorStore = get_serving().store
        info = store.info()
    except NotFound:  # reachable, but nothing uploaded yet
        return Overview(alias=store.alias, configured_model=configured_model,
                        milvus=Health(True, "no collection yet: upload images to create it"),
                        storage=storage, images=0, last_reindex=last)
    except LookalikeError as exc:
        return Overview(alias="", configured_model=configured_model,
                        milvus=Health(False, exc.message), storage=storage, last_reindex=last)
    target = rollback_target(store, info.collection)
    target_stamp = store.stamp_of(target) if target else None
    return Overview(
        alias=info.alias, configured_model=configured_model,
        milvus=Health(True, "Milvus Lite (local server)" if store.lite else "Milvus server"),
        storage=storage, images=info.rows, collection=info.collection,
        serving_model=info.stamp.name if info.stamp else "",
        dim=info.stamp.dim if info.stamp else None,
        fingerprint=info.stamp.fingerprint if info.stamp else "", created=info.created,
        index_type=info.index_type, metric=info.metric,
        # Milvus Lite does not report build parameters: show those collections are made with.
        index_params={**(info.index_params or {"M": store.params.m,
                                               "efConstruction": store.params.ef_construction}),
                      "ef": store.params.ef},
        index_state=info.index_state, rollback_to=target,
        rollback_model=target_stamp.name if target_stamp else "", last_reindex=last,
        copy_threshold=_copy_threshold(store, info.collection),
    )


def _copy_threshold(store: VectorStore, collection: str) -> str:
    try:
        return read_calibration(store, collection).describe()
    except LookalikeError as exc:
        return f"unknown ({exc.message})"


def _health(check: Any, detail: str) -> Health:
    try:
        check()
    except LookalikeError as exc:
        return Health(False, exc.message)
    return Health(True, detail)


def count(store: VectorStore) -> int:
    return store.count() if store.resolve() else 0


def browse(store: VectorStore, *, after: str, start: int, limit: int) -> GalleryPage:
    if store.resolve() is None:  # nothing uploaded yet
        return GalleryPage([], 0, None)
    rows = store.page(after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return GalleryPage(rows, start, rows[-1].id if more and rows else None)


def upload_sources(
    uploads: Iterable[FileStorage], *, label: str, label_from_folder: bool
) -> tuple[list[Source], list[Outcome]]:
    """Sources for uploaded images and the images inside uploaded .zip archives, and a
    rejection for each archive that cannot be opened."""
    sources: list[Source] = []
    rejected: list[Outcome] = []
    for upload in uploads:
        name = (upload.filename or "upload").replace("\\", "/").rsplit("/", 1)[-1][:200]
        if name.lower().endswith(".zip"):
            try:
                members = list(zip_sources(upload.stream, name=name,
                                           label_from_folder=label_from_folder))
            except BadRequest as exc:
                rejected.append(Outcome(name, REJECTED, reason=exc.message))
                continue
            sources.extend(replace(m, label=m.label or label) for m in members)
        else:
            data = upload.read()
            sources.append(Source(name, lambda data=data: data, label, {"source": name}))
    return sources, rejected


def add_images(
    sources: list[Source], rejected: list[Outcome], *, serving: Serving, images: ImageStore,
    files: JobFiles, batch_size: int, max_pixels: int, reject_copies: bool = False,
) -> Report:
    """Ingest uploads with the same pipeline as ``gallery add``; each new image that is a
    copy of one in the gallery says so (or is refused, with ``reject_copies``)."""
    with gallery_writes(files):
        snap = serving.snapshot(fresh=True)
        judge = CopyJudge(CopyRule.of(read_calibration(snap.vectors)), images)
        copies = CopyCheck(judge, reject_copies)
        report = Ingestor(snap.encoder, snap.vectors, images, batch_size=batch_size,
                          max_pixels=max_pixels, copies=copies).run(sources)
    return Report(rejected + report.outcomes)


def relabel(id_: str, label: str, *, serving: Serving, files: JobFiles) -> Entry:
    """Change an image's label: its row is upserted with the same vector."""
    with gallery_writes(files):  # through the alias: it cannot move while we hold the lock
        store = serving.store
        entry = store.get(id_, with_vector=True)
        updated = replace(entry, label=label.strip())
        store.upsert([updated])
    return updated


def update_image(
    id_: str, *, label: str | None = None, metadata: dict[str, Any] | None = None,
    serving: Serving, files: JobFiles,
) -> Entry:
    """Change an image's label and/or replace its metadata (the API's PATCH); like
    ``relabel``, the row is upserted with the same vector under the gallery lock."""
    with gallery_writes(files):
        store = serving.store
        entry = store.get(id_, with_vector=True)
        updated = replace(entry, label=entry.label if label is None else label.strip(),
                          metadata=entry.metadata if metadata is None else metadata)
        store.upsert([updated])
    return updated


def delete_image(id_: str, *, serving: Serving, images: ImageStore, files: JobFiles,
                 keep_files: bool = False) -> Entry:
    """Remove an image's original and thumbnail from the store, then its row.

    In that order, a failure part-way (the store or Milvus down) leaves the row, so
    the delete can simply be retried, and ``gallery check --repair`` reads a row
    without its original as an unfinished delete and completes it. (The other order
    would leave files that look like an unfinished add, and repair would bring the
    image back.) ``keep_files``: another gallery holds the same image, so only the row goes.
    """
    with gallery_writes(files):
        store = serving.store
        entry = store.get(id_)
        if not keep_files:
            images.delete(original_name(entry.key))
            images.delete(thumb_name(entry.key))
        store.delete([entry.id])
    return entry
