"""Groups of copies in a whole collection, found through the vector store.

Two ways to find every pair at or above the copy threshold, chosen by the
collection's size (BENCHMARKS.md, "Duplicates", has the measurements):

- ``exact``: all vectors in memory, one blocked matrix product over the upper
  triangle; no pair is missed, the work grows as N squared;
- ``range``: each vector, in batches, is a range search (radius = threshold) on
  the collection's HNSW index, so the work grows as N log N and the memory stays
  that of one batch.

Pairs an operator marked "not duplicates" are dropped; with a verified calibration
the pairs found (at its low candidate threshold) are then checked one by one
(app/copies/decision.py); union-find joins the rest into groups.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from app.copies.decision import CopyJudge
from app.copies.marks import Separator
from app.vectors.calls import milvus_call
from app.vectors.store import RADIUS_MARGIN, VectorStore

EXACT_MAX_ROWS = 100_000  # about where the range search catches up (BENCHMARKS.md, "9.")
BLOCK_SCORES = 16_000_000  # scores per block of the exact product (64 MB of float32)
BATCH = 256  # query vectors per range search call
NEIGHBOURS = 16  # hits asked per range query; more are asked again when all are copies
MAX_NEIGHBOURS = 1024


@dataclass(frozen=True)
class Pair:
    a: str  # content ids, a < b
    b: str
    score: float


@dataclass(frozen=True)
class Row:
    id: str
    key: str
    label: str


@dataclass(frozen=True)
class Found:
    """Groups of row ids (each of two or more) and the pairs that joined them."""

    groups: list[list[str]]
    pairs: list[Pair]
    rows: dict[str, Row]  # the rows in a group
    scanned: int  # rows in the collection
    method: str  # "exact" or "range"
    seconds: float


Progress = Callable[[int, int], None]


def find_groups(
    store: VectorStore,
    threshold: float,
    *,
    separator: Separator | None = None,
    method: str = "auto",
    on_progress: Progress | None = None,
    judge: CopyJudge | None = None,
) -> Found:
    """Every group of copies in the store's collection (its pinned one): pairs at or
    above ``threshold``, each then decided by ``judge`` when one is given."""
    started = time.perf_counter()
    total = store.count()
    if method == "auto":
        method = "exact" if total <= EXACT_MAX_ROWS else "range"
    finder = _exact_pairs if method == "exact" else _range_pairs
    rows: dict[str, Row] = {}
    pairs = finder(store, threshold, rows, total, on_progress or (lambda done, total: None))
    if separator:
        pairs = [p for p in pairs if not separator.separates(p.a, p.b)]
    if judge is not None:
        pairs = judged_pairs(pairs, rows, judge)
    groups = union_groups(pairs)
    members = {id_ for group in groups for id_ in group}
    return Found(
        groups,
        sorted(pairs, key=lambda p: -p.score),
        {i: rows[i] for i in members if i in rows},
        total,
        method,
        time.perf_counter() - started,
    )


def judged_pairs(pairs: list[Pair], rows: dict[str, Row], judge: CopyJudge) -> list[Pair]:
    """The pairs ``judge`` calls copies; one query image's features at a time."""
    kept: list[Pair] = []
    query = None
    for pair in sorted(pairs, key=lambda p: (p.a, p.b)):
        if query is None or query.key != rows[pair.a].key:
            query = judge.query(key=rows[pair.a].key)
        if query.is_copy(rows[pair.b].key, pair.score):
            kept.append(pair)
    return kept


def union_groups(pairs: list[Pair]) -> list[list[str]]:
    """Connected components of the pairs, each sorted, largest group first."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving
            x = parent[x]
        return x

    for pair in pairs:
        ra, rb = root(pair.a), root(pair.b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, list[str]] = {}
    for x in parent:
        groups.setdefault(root(x), []).append(x)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: (-len(g), g[0]))


@milvus_call("reading vectors")
def iterate_vectors(
    store: VectorStore,
    batch_size: int = 1000,
) -> Iterator[tuple[list[Row], np.ndarray]]:
    """Every row with its vector, a page at a time."""
    iterator = store.client.query_iterator(
        store.alias,
        batch_size=batch_size,
        filter="",
        output_fields=["id", "key", "label", "vector"],
        timeout=store.timeout,
    )
    try:
        while batch := iterator.next():
            page = [dict(r) for r in batch]
            yield (
                [Row(str(r["id"]), r["key"], r.get("label") or "") for r in page],
                np.asarray([r["vector"] for r in page], np.float32),
            )
    finally:
        iterator.close()


def _exact_pairs(
    store: VectorStore, threshold: float, rows: dict[str, Row], total: int, progress: Progress
) -> list[Pair]:
    ids: list[str] = []
    parts: list[np.ndarray] = []
    for page, vectors in iterate_vectors(store):
        for row in page:
            rows[row.id] = row
        ids += [r.id for r in page]
        parts.append(vectors)
        progress(len(ids) // 2, total)  # reading is the first half of the work here
    if not ids:
        return []
    matrix = np.concatenate(parts)
    pairs: list[Pair] = []
    step = max(1, min(1024, BLOCK_SCORES // len(ids)))
    for start in range(0, len(ids), step):
        block = matrix[start : start + step] @ matrix[start:].T
        qi, cj = np.nonzero(block >= threshold)
        for i, j in zip(qi.tolist(), cj.tolist(), strict=True):
            a, b = start + i, start + j
            if b > a:
                pairs.append(_pair(ids[a], ids[b], float(block[i, j])))
        progress(len(ids) // 2 + min(len(ids), start + step) // 2, total)
    return pairs


@milvus_call("searching for copies")
def _range_search(
    store: VectorStore, vectors: np.ndarray, threshold: float, limit: int
) -> list[list[tuple[str, float]]]:
    results = store.client.search(
        store.alias,
        data=vectors.tolist(),
        limit=limit,
        output_fields=[],
        search_params={
            "metric_type": "COSINE",
            "params": {"ef": max(store.params.ef, limit), "radius": threshold - RADIUS_MARGIN},
        },
        timeout=max(store.timeout, 60.0),
    )
    return [[(str(h["id"]), float(h["distance"])) for h in hits] for hits in results]


def _range_pairs(
    store: VectorStore, threshold: float, rows: dict[str, Row], total: int, progress: Progress
) -> list[Pair]:
    pairs: dict[tuple[str, str], Pair] = {}
    done = 0
    for page, vectors in iterate_vectors(store, BATCH):
        for row in page:
            rows[row.id] = row
        answers = _range_search(store, vectors, threshold, NEIGHBOURS)
        for n, (row, hits) in enumerate(zip(page, answers, strict=True)):
            limit = NEIGHBOURS
            while len(hits) >= limit and limit < MAX_NEIGHBOURS:  # a big group: ask for more
                limit *= 4
                hits = _range_search(store, vectors[n : n + 1], threshold, limit)[0]
            for other, score in hits:
                if other != row.id and score >= threshold:
                    pair = _pair(row.id, other, score)
                    pairs.setdefault((pair.a, pair.b), pair)
        done += len(page)
        progress(done, total)
    return list(pairs.values())


def _pair(a: str, b: str, score: float) -> Pair:
    return Pair(a, b, score) if a < b else Pair(b, a, score)
