"""The Milvus collection behind search: schema, HNSW/COSINE index, upsert, search.

The serving name (``LOOKALIKE_COLLECTION``, say ``gallery``) is an alias that
points to a physical collection (``gallery_20261120T120000``). A reindex fills a
new physical collection and moves the alias in one step, so searches never see
a half-built one. Each collection records in its description which model made
its vectors, so vectors from different models are never compared.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from pymilvus import MilvusClient

from app.config import Config
from app.exceptions import NotFound
from app.vectors.calls import milvus_call
from app.vectors.filters import Filters
from app.vectors.lifecycle import Collections
from app.vectors.records import (
    LABEL_LENGTH,
    OUTPUT_FIELDS,
    Entry,
    Hit,
    IndexParams,
    entry_from_row,
)

# Reads (search, get, count) do not wait for the server to catch up ("Bounded"),
# except for a while after this store wrote, when they read "Strong" so that a
# process sees its own writes. The collections' own level ("Strong") made every
# search on a Milvus server wait for the next time tick, whatever the gallery size
# (docs/performance.md, "Milvus"). pymilvus' "Session" level should do this, but
# MilvusClient does not record the write timestamps it needs.
FAST_READ = "Bounded"
STRONG_AFTER_WRITE_S = 30.0
# How far below min_score the range search's (exclusive) radius is set.
RADIUS_MARGIN = 1e-4
# A filtered search raises ef to this many times the hits wanted over the share of
# rows the filter matches, up to MAX_FILTER_EF (_filtered_plan).
FILTER_EF_FACTOR = 4
MAX_FILTER_EF = 16384
# A filter matching a share of the rows in this range loses recall in
# HNSW's filtered search whatever the ef (docs/search.md); there the filtered hits
# are merged with the filter's matches among an unfiltered search for
# OVERFETCH_FACTOR times the hits wanted over the share.
MERGE_SHARES = (0.02, 0.3)
OVERFETCH_FACTOR = 2
# Row counts that plan a filtered search are kept this long, for this many filters.
COUNT_SECONDS = 10.0
COUNTS_KEPT = 256


class VectorStore(Collections):
    """The gallery's vectors in one Milvus collection, reached through an alias."""

    def __init__(
        self,
        client: MilvusClient,
        alias: str,
        *,
        params: IndexParams | None = None,
        lite: bool = False,
        timeout: float = Config.MILVUS_TIMEOUT,
    ) -> None:
        self.client = client
        self.alias = alias
        self.params = params or IndexParams()
        self.lite = lite
        self.timeout = timeout  # for requests: searches, reads, small writes
        # Creating, loading, flushing, aliasing and dropping collections is
        # maintenance a busy server may take longer over (seen: > 3 s on 2.3).
        self.maintenance_timeout = max(timeout, 60.0)
        self._strong_until = 0.0  # monotonic time until reads must see this store's writes
        self._counts: dict[tuple[str, str], tuple[int, float]] = {}  # -> (rows, expiry)

    @milvus_call("writing vectors")
    def upsert(self, entries: Sequence[Entry], collection: str | None = None) -> None:
        """Insert or replace rows by content hash, so re-adding an image is harmless."""
        if not entries:
            return
        rows = [
            {
                "id": e.id,
                "vector": np.asarray(e.vector, dtype=np.float32).tolist(),
                "key": e.key,
                "label": e.label[:LABEL_LENGTH],
                "metadata": e.metadata or {},
            }
            for e in entries
        ]
        self._wrote()
        self.client.upsert(collection or self.alias, rows, timeout=self.timeout)

    @milvus_call("reading ids")
    def existing(self, ids: Iterable[str], collection: str | None = None) -> set[str]:
        """Which of these content hashes are already in the collection."""
        ids = list(ids)
        if not ids:
            return set()
        rows = self.client.query(
            collection or self.alias, filter=f"id in {json.dumps(ids)}",
            output_fields=["id"], timeout=self.timeout,
        )
        return {row["id"] for row in rows}

    @milvus_call("reading a gallery image")
    def get(self, id_: str, *, with_vector: bool = False) -> Entry:
        """One row by content hash; NotFound when it is not in the gallery."""
        fields = OUTPUT_FIELDS + (["vector"] if with_vector else [])
        rows = self.client.query(
            self.alias, filter=f"id == {json.dumps(id_)}", output_fields=fields,
            consistency_level=self._read_level(), timeout=self.timeout,
        )
        if not rows:
            raise NotFound("No gallery image has that key.")
        return entry_from_row(rows[0])

    def _wrote(self) -> None:
        self._strong_until = time.monotonic() + STRONG_AFTER_WRITE_S
        self._counts.clear()

    def _read_level(self) -> str:
        return "Strong" if time.monotonic() < self._strong_until else FAST_READ

    @milvus_call("searching")
    def search(
        self, vector: np.ndarray, k: int, *, collection: str | None = None,
        filters: Filters | None = None, offset: int = 0, min_score: float | None = None,
    ) -> list[Hit]:
        """The k nearest rows by cosine similarity, best first, after skipping ``offset``.

        ``filters`` restrict the rows (app/vectors/filters.py builds the expression).
        ``min_score`` is a range search: Milvus keeps scores strictly above its
        radius, so the radius sits just below and the cut at ``min_score`` itself,
        inclusive, is made here on the returned scores.
        """
        name = collection or self.alias
        expression = filters.expression() if filters else ""
        wanted = offset + k
        if not expression:
            hits = self._search(name, vector, k, offset, "", max(self.params.ef, wanted), min_score)
            return [h for h in hits if min_score is None or h.score >= min_score]
        ef, matching, total = self._filtered_plan(name, expression, wanted)
        if not matching:
            return []
        hits: list[Hit] = []
        if MERGE_SHARES[0] <= matching / total <= MERGE_SHARES[1]:
            # Enough matches among the unfiltered nearest are the filtered nearest; too
            # few (a filter far from the query) and the filtered search adds the rest.
            hits = self._overfetched(name, vector, wanted, matching / total, filters,
                                     min_score)
        if len(hits) < wanted:
            filtered = self._search(name, vector, wanted, 0, expression, ef, min_score)
            hits = self._merged(hits, filtered)
        if min_score is None and len(hits) < min(wanted, matching) and ef < MAX_FILTER_EF:
            # HNSW's filtered search can stop short, even with nothing, when the matching
            # rows lie far from the query (seen on Milvus Lite): once more, wider.
            wider = self._search(name, vector, wanted, 0, expression, MAX_FILTER_EF, None)
            hits = self._merged(hits, wider)
        return [h for h in hits[offset:wanted] if min_score is None or h.score >= min_score]

    def _search(self, name: str, vector: np.ndarray, limit: int, offset: int, expression: str,
                ef: int, min_score: float | None, fields: list[str] = OUTPUT_FIELDS) -> list[Hit]:
        params: dict[str, Any] = {"ef": ef}
        if min_score is not None:
            params["radius"] = min_score - RADIUS_MARGIN
        results = self.client.search(
            name,
            data=[np.asarray(vector, dtype=np.float32).tolist()],
            limit=limit, offset=offset,
            filter=expression,
            output_fields=fields,
            search_params={"metric_type": "COSINE", "params": params},
            consistency_level=self._read_level(), timeout=self.timeout,
        )
        return [
            Hit(
                id=str(hit["id"]),
                key=hit["entity"].get("key") or "",
                score=float(hit["distance"]),
                label=hit["entity"].get("label") or "",
                metadata=hit["entity"].get("metadata") or {},
            )
            for hit in results[0]
        ]

    def _filtered_plan(self, collection: str, expression: str, wanted: int
                       ) -> tuple[int, int, int]:
        """The ef a filtered search needs, the rows the filter matches and all rows.

        HNSW keeps only the matching rows among the ef candidates it visits (Lite:
        FAISS with an id selector; a server: a bitset), so a filter that matches a
        share s of the rows needs ef of about wanted / s to keep its recall.
        """
        total = self._kept_count(collection, "")
        matching = self._kept_count(collection, expression)
        total = max(total, matching, 1)  # the total may be a few seconds old
        needed = math.ceil(FILTER_EF_FACTOR * wanted * total / max(matching, 1))
        return min(MAX_FILTER_EF, max(self.params.ef, wanted, needed)), matching, total

    def _count(self, collection: str, expression: str) -> int:
        return int(self.client.query(
            collection, filter=expression, output_fields=["count(*)"], timeout=self.timeout,
            consistency_level=self._read_level())[0]["count(*)"])

    def _kept_count(self, collection: str, expression: str) -> int:
        """Rows matching ``expression`` ("": all), kept COUNT_SECONDS: counts only plan a
        filtered search (its ef, its path), so a recent one will do. A zero is never
        kept: a row another process just wrote must be found at once."""
        count, expires = self._counts.get((collection, expression), (0, 0.0))
        if time.monotonic() < expires:
            return count
        count = self._count(collection, expression)
        if len(self._counts) >= COUNTS_KEPT:
            self._counts.clear()
        if count:
            self._counts[(collection, expression)] = (count, time.monotonic() + COUNT_SECONDS)
        return count

    def _overfetched(self, name: str, vector: np.ndarray, wanted: int, share: float,
                     filters: Filters, min_score: float | None) -> list[Hit]:
        """The filter's matches among an unfiltered search for enough hits to hold
        ``wanted`` of them. Labels and ids are checked here on the hits' own fields,
        which spares a query whose condition Milvus 2.3 evaluates on every row (each
        side of an ``and``); a metadata condition is still left to Milvus, by id, so
        JSON comparisons keep one judge."""
        limit = min(MAX_FILTER_EF, math.ceil(OVERFETCH_FACTOR * wanted / share))
        if filters.checkable_on_hits():
            nearest = self._search(name, vector, limit, 0, "", limit, min_score)
            return [h for h in nearest if filters.admits(h.id, h.label)]
        nearest = self._search(name, vector, limit, 0, "", limit, min_score, fields=[])
        if not nearest:
            return []
        rows = self.client.query(
            name, filter=f"id in {json.dumps([h.id for h in nearest])} and "
                         f"({filters.expression()})",
            output_fields=OUTPUT_FIELDS, consistency_level=self._read_level(),
            timeout=self.timeout)
        found = {row["id"]: row for row in rows}
        return [Hit(id=h.id, key=found[h.id]["key"], score=h.score,
                    label=found[h.id].get("label") or "",
                    metadata=found[h.id].get("metadata") or {})
                for h in nearest if h.id in found]

    @staticmethod
    def _merged(*lists: list[Hit]) -> list[Hit]:
        """Hits of several searches of one query, each once, best first."""
        best = {hit.id: hit for hits in lists for hit in hits}
        return sorted(best.values(), key=lambda hit: -hit.score)

    @milvus_call("deleting vectors")
    def delete(self, ids: Sequence[str], collection: str | None = None) -> None:
        if ids:
            self._wrote()
            self.client.delete(collection or self.alias, ids=list(ids), timeout=self.timeout)

    @milvus_call("counting rows")
    def count(self, collection: str | None = None) -> int:
        rows = self.client.query(
            collection or self.alias, filter="", output_fields=["count(*)"],
            consistency_level=self._read_level(), timeout=self.timeout,
        )
        return int(rows[0]["count(*)"])

    @milvus_call("listing rows")
    def iterate(self, batch_size: int = 1000, collection: str | None = None) -> Iterator[Entry]:
        """Every row, without vectors, in id order, in pages (for checks, exports and reindex).

        A query iterator, not ``query(filter="id > last", limit=n)``: Milvus Lite
        answers a limited query with the first rows in insertion order, not the
        smallest ids, so keyset paging over plain queries skips rows there.
        """
        iterator = self.client.query_iterator(
            collection or self.alias, batch_size=batch_size, filter="",
            output_fields=["id", *OUTPUT_FIELDS], timeout=self.timeout,
        )
        try:
            while batch := iterator.next():
                # Plain dicts first: pymilvus rows are views that read their columns by position.
                yield from (entry_from_row(dict(r)) for r in batch)
        finally:
            iterator.close()

    @milvus_call("listing rows")
    def page(
        self, after: str = "", limit: int = 48, collection: str | None = None, *,
        filter: str = "",  # noqa: A002 - Milvus' name; an expression from Filters
    ) -> list[Entry]:
        """Up to ``limit`` rows with ids after ``after``, by id: keyset paging for the
        admin grid, which stays cheap at any depth (Milvus caps offset + limit). The
        first batch of a query iterator, for the reason given in ``iterate``.
        ``filter`` (built by app.vectors.filters) narrows the rows, say to labels."""
        parts = [f"id > {json.dumps(after)}" if after else "", filter]
        iterator = self.client.query_iterator(
            collection or self.alias, batch_size=limit, limit=limit,
            filter=" and ".join(f"({p})" for p in parts if p),
            output_fields=["id", *OUTPUT_FIELDS], timeout=self.timeout,
        )
        try:
            return [entry_from_row(dict(r)) for r in iterator.next()]
        finally:
            iterator.close()

    # -- index and health -------------------------------------------------------------

    @milvus_call("reaching Milvus")
    def ping(self) -> None:
        self.client.list_collections(timeout=min(self.timeout, 3.0))
