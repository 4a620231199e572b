"""Find the gallery images most similar to a query: the one path for HTML and JSON.

Pure over its collaborators (encoder, vector store, image store): views pass them
in, tests can too. Returns small frozen dataclasses with timings for each step.
A ``SearchQuery`` (app/search/query.py) carries the filters, minimum score,
region, page and one-per-label choice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.buckets.inplace import public_metadata
from app.copies.decision import CopyJudge
from app.copies.decision import Query as CopyQuery
from app.exceptions import NotFound
from app.gallery import imaging
from app.gallery.keys import is_valid_key, key_id, original_name
from app.gallery.storage import ImageStore
from app.model.encoder import Encoder
from app.search.query import MAX_WINDOW, SearchQuery
from app.vectors.records import Hit
from app.vectors.store import VectorStore

# per_label keeps the best hit of each label among this many times the hits asked
# for (at most MAX_WINDOW): Milvus group_by needs 2.4+, the 2.3 server here lacks it.
PER_LABEL_FANOUT = 10


@dataclass(frozen=True)
class Match:
    rank: int
    key: str
    score: float
    label: str
    metadata: dict[str, Any]
    copy: bool = False  # at or above the collection's copy threshold: the same picture


@dataclass(frozen=True)
class Query:
    """What was searched for: an upload (thumbnail kept for display) or a gallery key."""

    key: str = ""
    thumbnail: bytes = b""
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class SearchResult:
    query: Query
    matches: list[Match]
    timings_ms: dict[str, float] = field(default_factory=dict)
    request: SearchQuery | None = None
    next_offset: int | None = None  # None at the end of the results
    empty_reason: str = ""  # why there are no matches, when there are none


def find_similar(
    data: bytes, request: SearchQuery, *, encoder: Encoder, vectors: VectorStore,
    max_pixels: int, with_thumbnail: bool = False, copies: CopyJudge | None = None,
) -> SearchResult:
    """Decode an uploaded image, embed it (or its ``box``) and return its nearest images.

    ``with_thumbnail`` keeps a small preview of the query for pages to show; the
    JSON API does not need it and skips its cost.
    """
    started = time.perf_counter()
    decoded = imaging.decode(data, max_pixels=max_pixels)
    decoded_at = time.perf_counter()
    image = request.box.crop(decoded.image) if request.box else decoded.image
    vector = encoder.embed([image])[0]
    embedded_at = time.perf_counter()
    hits, next_offset = _search(vector, request, vectors)
    searched_at = time.perf_counter()
    preview = imaging.thumbnail(decoded.image, 384) if with_thumbnail else b""
    query = Query(thumbnail=preview, width=decoded.width, height=decoded.height)
    marks = _copy_marks(hits, copies.query(image=image)) if copies else None
    return SearchResult(query, _matches(hits, request.offset, marks), {
        "decode": _ms(started, decoded_at),
        "embed": _ms(decoded_at, embedded_at),
        "search": _ms(embedded_at, searched_at),
        "total": _ms(started, time.perf_counter()),
    }, request, next_offset, _why_empty(hits, vector, request, vectors))


def find_similar_to_key(
    key: str, request: SearchQuery, *, vectors: VectorStore,
    encoder: Encoder | None = None, images: ImageStore | None = None, max_pixels: int = 0,
    copies: CopyJudge | None = None,
) -> SearchResult:
    """More like a gallery image; itself is left out.

    Without a box its stored vector is the query. With a box the original is read
    from the image store and the region embedded (``encoder`` and ``images``).
    """
    if not is_valid_key(key):
        raise NotFound("That is not a gallery image key.")
    started = time.perf_counter()
    entry = vectors.get(key_id(key), with_vector=request.box is None)
    decoded_at = time.perf_counter()
    if request.box is None:
        vector = entry.vector
    else:
        if encoder is None or images is None:
            raise ValueError("a box on a gallery image needs the encoder and the image store")
        decoded = imaging.decode(images.get(original_name(entry.key)), max_pixels=max_pixels)
        decoded_at = time.perf_counter()
        vector = encoder.embed([request.box.crop(decoded.image)])[0]
    fetched_at = time.perf_counter()
    hits, next_offset = _search(vector, request, vectors, exclude_id=entry.id)
    searched_at = time.perf_counter()
    marks = _copy_marks(hits, copies.query(key=entry.key)) if copies else None
    return SearchResult(Query(key=entry.key), _matches(hits, request.offset, marks), {
        "decode": _ms(started, decoded_at),
        "embed": _ms(decoded_at, fetched_at),  # without a box: the stored vector is fetched
        "search": _ms(fetched_at, searched_at),
        "total": _ms(started, time.perf_counter()),
    }, request, next_offset,
        _why_empty(hits, vector, request, vectors, exclude_id=entry.id))


def _search(
    vector: np.ndarray, request: SearchQuery, vectors: VectorStore, exclude_id: str = "",
) -> tuple[list[Hit], int | None]:
    """One page of hits and the offset of the next page (None at the end)."""
    filters = request.filters(exclude_id=exclude_id)
    end = request.offset + request.k
    if request.per_label:
        window = min(MAX_WINDOW, (end + 1) * PER_LABEL_FANOUT)
        hits = vectors.search(vector, window, filters=filters, min_score=request.min_score)
        page = _best_per_label(hits)[request.offset:end + 1]
    else:
        page = vectors.search(vector, request.k + 1, offset=request.offset, filters=filters,
                              min_score=request.min_score)
    more = len(page) > request.k and end + request.k <= MAX_WINDOW
    return page[:request.k], end if more else None


def _best_per_label(hits: list[Hit]) -> list[Hit]:
    """The first (best) hit of each label; unlabelled images each stand for themselves."""
    seen: set[str] = set()
    best = []
    for hit in hits:
        group = hit.label or f"\0{hit.id}"
        if group not in seen:
            seen.add(group)
            best.append(hit)
    return best


def _why_empty(
    hits: list[Hit], vector: np.ndarray, request: SearchQuery, vectors: VectorStore,
    exclude_id: str = "",
) -> str:
    """Why a search found nothing, in words for the page and the API."""
    if hits:
        return ""
    if request.offset:
        return f"There are no more results after the first {request.offset}."
    filters = request.filters(exclude_id=exclude_id)
    if request.min_score is not None and vectors.search(vector, 1, filters=filters):
        return f"No image reaches the minimum score of {request.min_score:g}."
    if request.filtered:
        return "No gallery image matches the filters."
    return "The gallery is empty."


MARKS_VERIFIED = 3


def _copy_marks(hits: list[Hit], query: CopyQuery) -> list[bool]:
    """Which hits are copies of the query: the collection's decision (app/copies/decision.py).

    Verifying a pair reads and matches two images, so a results page verifies only its
    best MARKS_VERIFIED candidates (those above the low candidate threshold); the
    embedding threshold alone decides the rest, as it does without a verified rule.
    """
    floor, left, marks = query.judge.rule.floor, MARKS_VERIFIED, []
    for hit in hits:  # best first
        candidate = hit.score >= floor
        marks.append(query.is_copy(hit.key, hit.score, verify_pair=candidate and left > 0))
        left -= candidate
    return marks


def _matches(hits: list[Hit], offset: int = 0, copies: list[bool] | None = None) -> list[Match]:
    # Reserved keys (an in-place image's bucket location, app/buckets/inplace.py) stay inside.
    marks = copies or [False] * len(hits)
    return [Match(offset + i + 1, h.key, round(h.score, 4), h.label, public_metadata(h.metadata),
                  copy)
            for i, (h, copy) in enumerate(zip(hits, marks, strict=True))]


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 2)
