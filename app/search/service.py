"""Find the gallery images most similar to a query: the one path for HTML and JSON.

Pure over its collaborators (encoder, vector store): views pass them in, tests
can too. Returns small frozen dataclasses with timings for each step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from app.exceptions import BadRequest, NotFound
from app.gallery import imaging
from app.gallery.keys import is_valid_key, key_id
from app.model.encoder import Encoder
from app.vectors.records import Hit
from app.vectors.store import VectorStore


@dataclass(frozen=True)
class Match:
    rank: int
    key: str
    score: float
    label: str
    metadata: dict[str, Any]


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


def parse_k(raw: Any, *, default: int, maximum: int) -> int:
    """The number of results asked for, or a clear 400."""
    if raw is None or raw == "":
        return default
    try:
        k = int(str(raw).strip())
    except ValueError:
        raise BadRequest(
            f"k must be a whole number from 1 to {maximum}; got {str(raw)[:20]!r}.") from None
    if not 1 <= k <= maximum:
        raise BadRequest(f"k must be from 1 to {maximum}; got {k}.")
    return k


def find_similar(
    data: bytes, k: int, *, encoder: Encoder, vectors: VectorStore, max_pixels: int,
    with_thumbnail: bool = False,
) -> SearchResult:
    """Decode an uploaded image, embed it and return its k nearest gallery images.

    ``with_thumbnail`` keeps a small preview of the query for pages to show; the
    JSON API does not need it and skips its cost.
    """
    started = time.perf_counter()
    decoded = imaging.decode(data, max_pixels=max_pixels)
    decoded_at = time.perf_counter()
    vector = encoder.embed([decoded.image])[0]
    embedded_at = time.perf_counter()
    hits = vectors.search(vector, k)
    searched_at = time.perf_counter()
    preview = imaging.thumbnail(decoded.image, 192) if with_thumbnail else b""
    query = Query(thumbnail=preview, width=decoded.width, height=decoded.height)
    return SearchResult(query, _matches(hits), {
        "decode": _ms(started, decoded_at),
        "embed": _ms(decoded_at, embedded_at),
        "search": _ms(embedded_at, searched_at),
        "total": _ms(started, time.perf_counter()),
    })


def find_similar_to_key(key: str, k: int, *, vectors: VectorStore) -> SearchResult:
    """More like a gallery image: its stored vector is the query; itself is left out."""
    if not is_valid_key(key):
        raise NotFound("That is not a gallery image key.")
    started = time.perf_counter()
    entry = vectors.get(key_id(key), with_vector=True)
    fetched_at = time.perf_counter()
    hits = [h for h in vectors.search(entry.vector, k + 1) if h.id != entry.id][:k]
    searched_at = time.perf_counter()
    return SearchResult(Query(key=entry.key), _matches(hits), {
        "decode": 0.0,
        "embed": _ms(started, fetched_at),  # the stored vector is fetched, not computed
        "search": _ms(fetched_at, searched_at),
        "total": _ms(started, time.perf_counter()),
    })


def _matches(hits: list[Hit]) -> list[Match]:
    return [Match(i + 1, h.key, round(h.score, 4), h.label, h.metadata) for i, h in enumerate(hits)]


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 2)
