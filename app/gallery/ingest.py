"""Sources -> image store + vectors, batched, overlapped, resumable, with progress.

Where the model leaves CPU free (a GPU, fewer torch threads than cores) a producer
thread prepares the next batch while the model runs; where it takes every core,
batches are prepared between model calls, one thread per core, since work beside
the model only slows it (docs/architecture.md, "The ingest path"). Originals and
thumbnails are written before their vector, so a rerun completes an interrupted
one; at most two batches are in flight.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from PIL import Image

from app.config import Config
from app.copies.upload import CopyCheck
from app.exceptions import BadRequest, InvalidImage, NotFound
from app.gallery import imaging
from app.gallery.keys import original_name, thumb_name
from app.gallery.prefetch import prefetch
from app.gallery.sources import Source
from app.gallery.storage import ImageStore
from app.model.cpus import available_cpus
from app.model.encoder import Encoder
from app.model.preprocess import Preprocess
from app.vectors.records import Entry
from app.vectors.store import VectorStore

log = logging.getLogger(__name__)

_Map = Callable[..., Iterable[Any]]  # map, or a thread pool's map
_Loaded = tuple[Source, bytes, str]  # a source, its bytes and their content hash

ADDED, DUPLICATE, REJECTED = "added", "duplicate", "rejected"


@dataclass(frozen=True)
class Outcome:
    """What happened to one source."""

    name: str
    status: str  # ADDED, DUPLICATE or REJECTED
    key: str = ""
    reason: str = ""
    near_key: str = ""  # the gallery image this one is a copy of (app/copies/upload.py)
    near_score: float = 0.0

    @property
    def near_duplicate_of(self) -> dict[str, Any] | None:
        return {"key": self.near_key, "score": round(self.near_score, 4)} \
            if self.near_key else None


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def added(self) -> int:
        return self.count(ADDED)

    @property
    def duplicates(self) -> int:
        return self.count(DUPLICATE)

    @property
    def rejected(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == REJECTED]


@dataclass(frozen=True)
class _Prepared:
    source: Source
    id: str
    key: str


@dataclass(frozen=True)
class _Batch:
    items: list[_Prepared]
    pixels: np.ndarray | None  # Preprocess.prepare's output: no torch on this thread
    outcomes: list[Outcome]  # duplicates and rejections found while preparing


class Ingestor:
    """Adds images to a gallery: one store, one collection, one encoder."""

    def __init__(
        self,
        encoder: Encoder,
        vectors: VectorStore,
        images: ImageStore,
        *,
        batch_size: int = 0,
        max_pixels: int = Config.MAX_IMAGE_PIXELS,
        collection: str | None = None,
        skip_existing: bool = True,
        store_images: bool = True,
        copies: CopyCheck | None = None,
    ) -> None:
        self.encoder = encoder
        self.vectors = vectors
        self.images = images
        self.batch_size = batch_size or encoder.batch_size  # 0: the encoder's own
        self.max_pixels = max_pixels
        self.collection = collection
        self.skip_existing = skip_existing
        self.store_images = store_images  # False: re-encoding images the store holds
        self.overlap = _model_leaves_cpu_free(encoder)
        self.copies = copies  # report (or refuse) copies of images already in the collection

    def run(
        self, sources: Iterable[Source], on_outcome: Callable[[Outcome], None] | None = None
    ) -> Report:
        report = Report()
        for outcome in self.stream(sources):
            report.outcomes.append(outcome)
            if on_outcome:
                on_outcome(outcome)
        return report

    def stream(self, sources: Iterable[Source]) -> Iterator[Outcome]:
        """Outcomes in completion order, one per source."""
        if self.overlap:
            batches = prefetch(self._prepare_batches(sources, map), depth=1,
                               name="ingest-prefetch")
            yield from self._insert_all(batches)
            return
        workers = max(2, available_cpus())
        with ThreadPoolExecutor(workers, thread_name_prefix="ingest-prepare") as pool:
            yield from self._insert_all(self._prepare_batches(sources, pool.map))

    def _insert_all(self, batches: Iterable[_Batch]) -> Iterator[Outcome]:
        for batch in batches:
            yield from batch.outcomes
            if batch.items:
                yield from self._insert(batch)

    def _prepare_batches(self, sources: Iterable[Source], each: _Map) -> Iterator[_Batch]:
        seen: set[str] = set()
        chunk: list[Source] = []
        for source in sources:
            chunk.append(source)
            if len(chunk) == self.batch_size:
                yield self._prepare(chunk, seen, each)
                chunk = []
        if chunk:
            yield self._prepare(chunk, seen, each)

    def _prepare(self, chunk: list[Source], seen: set[str], each: _Map) -> _Batch:
        """One batch: sources read in order, duplicates set apart, then each new image
        made ready by ``each`` (``map``, or a thread pool's)."""
        outcomes: list[Outcome] = []
        new, copies = self._new_images(self._read(chunk, outcomes), seen, outcomes)
        items, resized = [], []
        for (_, _, digest), result in zip(new, each(self._ready, new), strict=True):
            if isinstance(result, Outcome):  # rejected: so is every copy
                outcomes.append(result)
                outcomes += [replace(result, name=s.name) for s in copies[digest]]
                continue
            seen.add(digest)
            items.append(result[0])
            resized.append(result[1])
            outcomes += [Outcome(s.name, DUPLICATE, key=digest) for s in copies[digest]]
        pixels = self.encoder.preprocess.finish(resized) if resized else None
        return _Batch(items, pixels, outcomes)

    def _read(self, chunk: list[Source], outcomes: list[Outcome]) -> list[_Loaded]:
        """Each source's bytes and content hash; an unreadable source is rejected."""
        loaded: list[_Loaded] = []
        for source in chunk:
            try:
                data = source.read()
            except (OSError, BadRequest) as exc:
                outcomes.append(Outcome(source.name, REJECTED, reason=_reason(exc)))
                continue
            loaded.append((source, data, imaging.content_hash(data)))
        return loaded

    def _new_images(
        self, loaded: list[_Loaded], seen: set[str], outcomes: list[Outcome]
    ) -> tuple[list[_Loaded], dict[str, list[Source]]]:
        """The images neither in the collection nor earlier in this run, each once.

        Also returns, by hash, the later sources with the bytes of a new image
        (``copies``): they share its outcome.
        """
        known = self.vectors.existing({h for _, _, h in loaded}, self.collection) \
            if self.skip_existing else set()
        new: list[_Loaded] = []
        copies: dict[str, list[Source]] = {}
        for source, data, digest in loaded:
            if digest in known or digest in seen:
                outcomes.append(Outcome(source.name, DUPLICATE, key=digest))
            elif digest in copies:
                copies[digest].append(source)
            else:
                copies[digest] = []
                new.append((source, data, digest))
        return new, copies

    def _ready(self, item: _Loaded) -> tuple[_Prepared, Image.Image] | Outcome:
        """Decode, resize for the encoder and store the original and its thumbnail."""
        source, data, digest = item
        try:
            # self.store, not the module's store_image: subclasses store differently
            # (in-place bucket images keep only their thumbnail, app/buckets/changes.py).
            key, small = ready_image(data, digest, self.encoder.preprocess, None,
                                     max_pixels=self.max_pixels,
                                     store=self.store if self.store_images else None)
        except InvalidImage as exc:
            return Outcome(source.name, REJECTED, reason=exc.message)
        return _Prepared(source, digest, key), small

    def store(self, key: str, data: bytes, image: imaging.DecodedImage,
              thumb_from: Image.Image | None = None) -> None:
        """Write the original and its thumbnail (idempotent: keys are content hashes)."""
        store_image(self.images, key, data, image, thumb_from)

    def _insert(self, batch: _Batch) -> Iterator[Outcome]:
        assert batch.pixels is not None
        vectors = self.encoder.embed_prepared(batch.pixels)
        near = self.copies.nearest(self.vectors, vectors, self.collection,
                                   [p.key for p in batch.items]) \
            if self.copies else [None] * len(batch.items)
        entries, outcomes = [], []
        for p, vector, hit in zip(batch.items, vectors, near, strict=True):
            found = {"near_key": hit.key, "near_score": hit.score} if hit else {}
            if hit and self.copies and self.copies.reject:
                self.unstore(p.key)
                outcomes.append(Outcome(p.source.name, REJECTED, reason=self.copies.reason(hit),
                                        **found))
                continue
            entries.append(Entry(p.id, vector, p.key, p.source.label, _metadata(p.source)))
            outcomes.append(Outcome(p.source.name, ADDED, key=p.key, **found))
        self.vectors.upsert(entries, self.collection)
        yield from outcomes

    def unstore(self, key: str) -> None:
        """Remove a refused image's original and thumbnail (it has no row)."""
        if self.store_images:
            self.images.delete(original_name(key))
            self.images.delete(thumb_name(key))


# (key, original bytes, decoded image, what to make the thumbnail from) -> stored
StoreStep = Callable[[str, bytes, imaging.DecodedImage, "Image.Image | None"], None]


def ready_image(data: bytes, digest: str, preprocess: Preprocess, images: ImageStore | None,
                *, max_pixels: int, store: StoreStep | None = None) -> tuple[str, Image.Image]:
    """Decode, resize for the encoder and (given a store) store the original and its
    thumbnail: the one per-image step of every ingest, in process or on a Ray task
    (app/cluster/pipeline.py). ``store`` replaces writing both into ``images``.
    Raises InvalidImage."""
    image = imaging.decode(data, max_pixels=max_pixels)
    key = f"{digest}.{image.extension}"
    # One resize for the encoder and the thumbnail, when the encoder's keeps
    # the aspect and still covers the thumbnail: half the CPU of a photo here.
    small = preprocess.resize(image.image)
    if store is not None or images is not None:
        thumb_from = small if preprocess.shrinks_keeping_aspect(
            image.image, imaging.THUMB_SIZE) else image.image
        if store is not None:
            store(key, data, image, thumb_from)
        else:
            store_image(images, key, data, image, thumb_from)
    return key, small


def store_image(images: ImageStore, key: str, data: bytes, image: imaging.DecodedImage,
                thumb_from: Image.Image | None = None) -> None:
    """Write the original and its thumbnail (idempotent: keys are content hashes)."""
    images.put(original_name(key), data, imaging.MIME_TYPES[image.extension])
    store_thumbnail(images, key, data, image, thumb_from)


def store_thumbnail(images: ImageStore, key: str, data: bytes, image: imaging.DecodedImage,
                    thumb_from: Image.Image | None = None) -> None:
    """Write the thumbnail only: an image indexed in place keeps its original in its
    bucket (app/buckets/changes.py, and its Ray step in app/cluster/pipeline.py)."""
    thumb = imaging.thumbnail(thumb_from or image.image)
    images.put(thumb_name(key), thumb, imaging.THUMB_MIME)


def _model_leaves_cpu_free(encoder: Encoder) -> bool:
    """A GPU model, or fewer torch threads than usable cores: preparing can overlap."""
    return not encoder.device.startswith("cpu") or torch.get_num_threads() < available_cpus()


def _metadata(source: Source) -> dict[str, Any]:
    return {k: v for k, v in source.metadata.items() if v not in (None, "")}


def _reason(exc: Exception) -> str:
    if isinstance(exc, (BadRequest, NotFound)):
        return exc.message
    return f"could not read the file ({exc.__class__.__name__}: {exc})"
