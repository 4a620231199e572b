"""Suite 8: filtered search: latency and recall@10 at 50%, 10%, 1% and 0.1% selectivity.

The gallery is suite 3's (vectors near real embeddings); each row gets a label
so that nested label sets match 50%, 10%, 1% and 0.1% of the rows, and the
filter is the app's own (``Filters(labels=...)`` through ``VectorStore.search``).
Recall is against exact filtered search with numpy over the same vectors;
unfiltered search is measured in the same run, beside it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from app.vectors.filters import Filters
from app.vectors.records import IndexParams, ModelStamp
from app.vectors.store import VectorStore
from bench.common import percentile
from bench.search_scale import DIM, INSERT_BATCH, centres, synthetic

# label -> the share of rows that carry it or a rarer one (the filter takes them all)
SHARES = {"p0.1": 0.001, "p1": 0.01, "p10": 0.1, "p50": 0.5}
QUERIES = 100


def run(workdir: Path, *, sizes: list[int], backends: dict[str, Any], quick: bool = False
        ) -> dict[str, Any]:
    """``backends``: name -> (MilvusClient, is_lite)."""
    base, origin = centres(workdir, quick=quick)
    queries = synthetic(base, 10 if quick else QUERIES, seed=998)
    largest = synthetic(base, max(sizes), seed=7)
    draws = np.random.default_rng(5).random(max(sizes))
    labels = np.array(["rest"] * len(draws), dtype=object)
    for label, share in sorted(SHARES.items(), key=lambda item: -item[1]):
        labels[draws < share] = label
    out: dict[str, Any] = {"dim": DIM, "vectors": origin, "queries": len(queries), "results": {}}
    for backend, (client, lite) in backends.items():
        for size in sizes:
            out["results"][f"{backend}/{size}"] = measure(
                client, lite, largest[:size], labels[:size], queries)
    return out


def measure(client: Any, lite: bool, vectors: np.ndarray, labels: np.ndarray,
            queries: np.ndarray) -> dict[str, Any]:
    store = VectorStore(client, f"filtered{len(vectors)}_{int(time.time())}",
                        params=IndexParams(), lite=lite, timeout=600)
    collection = store.create_collection(ModelStamp("bench", "synthetic", DIM))
    for i in range(0, len(vectors), INSERT_BATCH):
        client.insert(collection, [
            {"id": f"{i + j:064x}", "vector": v.tolist(), "key": f"{i + j:064x}.jpg",
             "label": labels[i + j], "metadata": {}}
            for j, v in enumerate(vectors[i:i + INSERT_BATCH])], timeout=600)
    state = store.wait_for_index(collection, serving=False, timeout=3600)
    scores = queries @ vectors.T
    result: dict[str, Any] = {"rows": len(vectors), "index_state": state, "by_filter": {}}
    cases = {"none": ()} | {f"{share:.1%}": tuple(k for k, s in SHARES.items() if s <= share)
                            for share in sorted(SHARES.values(), reverse=True)}
    try:
        for name, wanted in cases.items():
            mask = np.isin(labels, wanted) if wanted else np.ones(len(labels), bool)
            filters = Filters(labels=wanted) if wanted else None
            store.search(queries[0], 10, collection=collection, filters=filters)  # warm
            latencies, recalls = [], []
            for query, row in zip(queries, scores, strict=True):
                truth = set(np.flatnonzero(mask)[np.argsort(-row[mask])[:10]].tolist())
                start = time.perf_counter()
                hits = store.search(query, 10, collection=collection, filters=filters)
                latencies.append((time.perf_counter() - start) * 1000)
                recalls.append(len({int(h.id, 16) for h in hits} & truth) / max(len(truth), 1))
            result["by_filter"][name] = {
                "matching_rows": int(mask.sum()), "p50_ms": percentile(latencies, 50),
                "p95_ms": percentile(latencies, 95), "recall_at_10": float(np.mean(recalls))}
    finally:
        client.drop_collection(collection)
    return result
