"""The gallery's labels with their counts, cached per physical collection.

Counting reads every row's label, so pages do not do it on each view: the
answer is kept per physical collection name (a reindex makes a new name, so it
misses the cache) for ``ttl`` seconds (uploads add labels without a reindex).
"""

from __future__ import annotations

import json
import threading
import time

from app.vectors.calls import milvus_call
from app.vectors.store import VectorStore


@milvus_call("counting labels")
def count_labels(store: VectorStore, collection: str, batch_size: int = 1000) -> dict[str, int]:
    """Every label of ``collection`` with its number of images, most images first."""
    counts: dict[str, int] = {}
    last = ""
    while True:
        rows = store.client.query(
            collection, filter=f"id > {json.dumps(last)}", output_fields=["id", "label"],
            limit=batch_size, timeout=store.timeout,
        )
        if not rows:
            return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
        page = [dict(r) for r in rows]
        for row in page:
            if row.get("label"):
                counts[row["label"]] = counts.get(row["label"], 0) + 1
        last = max(r["id"] for r in page)


class LabelCache:
    """Label counts by physical collection name, each kept for ``ttl`` seconds."""

    def __init__(self, ttl: float = 300.0, size: int = 4) -> None:
        self.ttl = ttl
        self.size = size
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, dict[str, int]]] = {}

    def get(self, store: VectorStore, collection: str) -> dict[str, int]:
        with self._lock:
            cached = self._entries.get(collection)
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        counts = count_labels(store, collection)
        with self._lock:
            self._entries[collection] = (time.monotonic(), counts)
            while len(self._entries) > self.size:  # the oldest generation goes first
                self._entries.pop(next(iter(self._entries)))
        return counts
