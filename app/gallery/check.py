"""Find and repair disagreements between the image store and the vector collection.

The write order makes every disagreement mean one thing. Ingest stores the
original and thumbnail before it writes the row, and deletion removes the
objects before the row. So an original without a row is an interrupted add:
repair indexes it. A row without its original is an interrupted delete:
repair deletes the row. A thumbnail without its original goes; a missing
thumbnail is made again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Set
from dataclasses import dataclass, field
from typing import Any

from app.buckets.inplace import location_of
from app.exceptions import InvalidImage, NotFound
from app.gallery import imaging
from app.gallery.ingest import Ingestor, Report
from app.gallery.keys import ORIGINALS, THUMBS, key_id, original_name, thumb_name
from app.gallery.sources import Source
from app.gallery.storage import ImageStore
from app.vectors.store import VectorStore


@dataclass(frozen=True)
class CheckReport:
    rows: int
    originals: int
    thumbs: int
    unindexed: list[str] = field(default_factory=list)  # originals (keys) without a row
    missing_originals: list[str] = field(default_factory=list)  # row ids without an original
    orphan_thumbs: list[str] = field(default_factory=list)  # thumbnails without an original
    missing_thumbs: list[str] = field(default_factory=list)  # original keys without a thumbnail
    # Rows of images indexed in place (app/buckets) whose bucket object is gone: id -> s3://...
    missing_objects: dict[str, str] = field(default_factory=dict)

    @property
    def consistent(self) -> bool:
        return not (self.unindexed or self.missing_originals or self.orphan_thumbs
                    or self.missing_thumbs or self.missing_objects)


@dataclass(frozen=True)
class RepairReport:
    indexed: Report
    rows_deleted: int
    thumbs_deleted: int
    thumbs_made: int


def check(vectors: VectorStore, images: ImageStore,
          missing_in_place: Callable[[dict[str, Any]], dict[str, str]] | None = None, *,
          held_elsewhere: Set[str] = frozenset()) -> CheckReport:
    """Compare every row with every stored object (ids only: flat in memory).

    Originals are shared between galleries: one whose id another gallery holds
    (``held_elsewhere``) is not an unfinished add to this one. Rows of in-place
    images (their original in a bucket, app/buckets) have no original here;
    ``missing_in_place`` (id -> location, for those rows) says which of their
    objects are gone.
    """
    rows, in_place = {}, {}
    for entry in vectors.iterate():
        where = location_of(entry.metadata)
        rows[entry.id] = entry.key
        if where is not None:
            in_place[entry.id] = where
    originals = {name[len(ORIGINALS):] for name in images.names(ORIGINALS)}
    thumbs = set(images.names(THUMBS))
    by_hash = {key_id(key): key for key in originals}
    expected_thumbs = {thumb_name(key): key for key in originals}
    expected_thumbs.update((thumb_name(rows[i]), rows[i]) for i in in_place)
    return CheckReport(
        rows=len(rows),
        originals=len(originals),
        thumbs=len(thumbs),
        unindexed=sorted(key for digest, key in by_hash.items()
                         if digest not in rows and digest not in held_elsewhere),
        missing_originals=sorted(i for i, key in rows.items()
                                 if key not in originals and i not in in_place),
        orphan_thumbs=sorted(thumbs - expected_thumbs.keys()),
        missing_thumbs=sorted(key for name, key in expected_thumbs.items()
                              if name not in thumbs and key_id(key) not in in_place),
        missing_objects=missing_in_place(in_place) if missing_in_place and in_place else {},
    )


def repair(report: CheckReport, ingestor: Ingestor,
           on_outcome: Callable | None = None) -> RepairReport:
    images, vectors = ingestor.images, ingestor.vectors
    indexed = ingestor.run(stored_sources(images, report.unindexed), on_outcome)
    vectors.delete(report.missing_originals)
    for id_ in report.missing_objects:  # in-place rows whose object is gone, thumbnail first
        images.delete(f"{THUMBS}{id_}.jpg")
    vectors.delete(list(report.missing_objects))
    made = 0
    for key in report.missing_thumbs:
        try:
            decoded = imaging.decode(images.get(original_name(key)))
        except (InvalidImage, NotFound):
            continue
        images.put(thumb_name(key), imaging.thumbnail(decoded.image), imaging.THUMB_MIME)
        made += 1
    for name in report.orphan_thumbs:
        images.delete(name)
    return RepairReport(indexed, len(report.missing_originals) + len(report.missing_objects),
                        len(report.orphan_thumbs), made)


def stored_sources(images: ImageStore, keys: list[str]) -> Iterator[Source]:
    """Sources that read originals back from the store (for repair and reindex)."""
    for key in keys:
        yield Source(key, lambda k=key: images.get(original_name(k)))
