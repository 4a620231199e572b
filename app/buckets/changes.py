"""One source's changes applied to a gallery: objects indexed in place, gone ones removed.

Indexing reads each object once (``app.buckets.reading``), writes only the
thumbnail to Lookalike's image store and the row (with the object's location)
to the collection; the original stays in its bucket. A gone object's row is
removed, thumbnail first, then row, then the manifest entry, so an interrupted
removal is simply done again. When the gallery holds another object with the
same bytes, the row is pointed at that one instead of removed. With ``on_ray``
(``gallery add|sync --ray``) the same objects are read, stored and embedded by
the Ray pipeline (app/cluster/run.py ``inplace_step``) instead of in process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from minio import Minio
from PIL import Image

from app.buckets.catalog import ADDED, DUPLICATE, FAILED, Known, SourceRecord
from app.buckets.inplace import ObjectLocation, location_of, with_location
from app.buckets.listing import ObjectRef
from app.buckets.reading import BucketObject, LabelRule, object_sources
from app.config import Config
from app.coordination.base import SourceCatalog
from app.exceptions import NotFound
from app.gallery import imaging
from app.gallery.ingest import Ingestor, Outcome, store_thumbnail
from app.gallery.keys import thumb_name
from app.gallery.sources import Source
from app.gallery.storage import ImageStore
from app.model.encoder import Encoder
from app.vectors.store import VectorStore

MAX_FAILURES = 10  # failure reasons kept per run; the count is exact


class InPlaceIngestor(Ingestor):
    """The ingest pipeline, storing thumbnails only: originals stay in their bucket."""

    def store(
        self,
        key: str,
        data: bytes,
        image: imaging.DecodedImage,
        thumb_from: Image.Image | None = None,
    ) -> None:
        store_thumbnail(self.images, key, data, image, thumb_from)


class OnRay(Protocol):
    """Objects read, stored (thumbnail) and embedded elsewhere; each outcome told, and
    the metadata of each object read (its ETag and size as read)."""

    def __call__(
        self,
        objects: list[BucketObject],
        encoder: Encoder,
        vectors: VectorStore,
        on_outcome: Callable[[Outcome], None],
        on_read: Callable[[str, dict[str, Any]], None],
    ) -> None: ...


@dataclass
class Tally:
    """What a run did (a sync, or a batch of bucket events)."""

    added: int = 0
    duplicates: int = 0
    failed: int = 0
    removed: int = 0
    repointed: int = 0
    failures: list[str] = field(default_factory=list)

    def fail(self, key: str, reason: str) -> None:
        self.failed += 1
        if len(self.failures) < MAX_FAILURES:
            self.failures.append(f"{key}: {reason}")


class Changes:
    """Applies changes of one source to one collection (the caller holds the gallery lock)."""

    def __init__(
        self,
        catalog: SourceCatalog,
        source: SourceRecord,
        client: Minio,
        images: ImageStore,
        encoder: Encoder,
        vectors: VectorStore,
        *,
        gallery: str,
        batch_size: int = 0,
        max_pixels: int = Config.MAX_IMAGE_PIXELS,
        on_ray: OnRay | None = None,
    ) -> None:
        self.catalog = catalog
        self.source = source
        self.client = client
        self.images = images
        self.encoder = encoder
        self.vectors = vectors
        self.gallery = gallery
        self.on_ray = on_ray
        self.ingestor = InPlaceIngestor(
            encoder, vectors, images, batch_size=batch_size, max_pixels=max_pixels
        )

    def index(
        self,
        refs: list[ObjectRef],
        tally: Tally,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> list[Known]:
        """Index objects in place; returns their manifest entries (failed ones too)."""
        if not refs:
            return []
        rule = LabelRule(
            self.source.label_rule,
            self.catalog.labels_for(self.source.id, (r.key for r in refs))
            if self.source.label_rule == "csv"
            else None,
        )
        read: dict[str, ObjectLocation | None] = {}
        by_key = {r.key: r for r in refs}
        known: list[Known] = []

        def done(outcome: Outcome) -> None:
            known.append(self._known(outcome, by_key[outcome.name], read.get(outcome.name), tally))
            if on_outcome:
                on_outcome(outcome)

        bucket, endpoint = self.source.bucket, self.source.endpoint
        if self.on_ray is not None:
            objects = [BucketObject.of(bucket, r, rule, endpoint) for r in refs]
            self.on_ray(
                objects,
                self.encoder,
                self.vectors,
                done,
                lambda name, meta: read.__setitem__(name, location_of(meta)),
            )
            return known
        sources = object_sources(self.client, bucket, refs, rule, endpoint=endpoint)
        for outcome in self.ingestor.stream(_remember(sources, read)):
            done(outcome)
        return known

    def _known(
        self, outcome: Outcome, ref: ObjectRef, where: ObjectLocation | None, tally: Tally
    ) -> Known:
        etag, size = (where.etag, where.size) if where else (ref.etag, ref.size)
        if outcome.status == ADDED:
            tally.added += 1
            return Known(ref.key, etag, size, outcome.key.partition(".")[0], ADDED)
        if outcome.status == DUPLICATE:
            tally.duplicates += 1
            return Known(ref.key, etag, size, outcome.key.partition(".")[0], DUPLICATE)
        tally.fail(ref.key, outcome.reason)
        return Known(ref.key, etag, size, "", FAILED)

    def remove(self, entries: Iterable[Known], tally: Tally) -> None:
        """Take gone objects out of the gallery and the manifest."""
        for entry in entries:
            if entry.content_id:
                self._unlink(entry, tally)
            self.catalog.forget(self.source.id, [entry.key])

    def _unlink(self, entry: Known, tally: Tally) -> None:
        try:
            row = self.vectors.get(entry.content_id, with_vector=True)
        except NotFound:
            return
        where = location_of(row.metadata)
        if where is None or (where.bucket, where.key) != (self.source.bucket, entry.key):
            return  # the row is an upload, or points at another copy: it stays
        other = self.catalog.other_holder(
            self.gallery, entry.content_id, besides=(self.source.id, entry.key)
        )
        if other is not None:
            holder, copy = other
            moved = ObjectLocation(holder.bucket, copy.key, copy.etag, copy.size, holder.endpoint)
            self.vectors.upsert([replace(row, metadata=with_location(row.metadata, moved))])
            tally.repointed += 1
            return
        self.images.delete(thumb_name(row.key))
        self.vectors.delete([row.id])
        tally.removed += 1


def _remember(
    sources: Iterator[Source], into: dict[str, ObjectLocation | None]
) -> Iterator[Source]:
    """Pass sources through, keeping where each was read from (not its bytes)."""
    for source in sources:
        into[source.name] = location_of(source.metadata)
        yield source
