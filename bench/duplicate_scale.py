"""Suite 9: the duplicate pass as the gallery grows, with planted near-duplicates.

Synthetic vectors shaped like embeddings (clusters around correlated, low-rank
centres, so neighbours are similar but below the threshold), and 1% of them
given a planted copy (the vector plus small noise, cosine about 0.99). Measures
the time of ``find_groups`` by method, its growth exponent between sizes, and
how many planted pairs it recovers (and which other pairs it reports).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from pymilvus import MilvusClient

from app.copies.finder import EXACT_MAX_ROWS, find_groups
from app.vectors.records import Entry, ModelStamp
from app.vectors.store import VectorStore

DIM = 384
THRESHOLD = 0.95
CLUSTER_NOISE = 0.6  # within a cluster cosine is about 1 / (1 + 0.36): similar, not copies
COPY_NOISE = 0.15  # a planted copy: cosine about 0.99
PLANTED_SHARE = 0.01
INSERT_BATCH = 5000
EXACT_UP_TO = 100_000  # the exact product is measured up to this size (it grows as N^2)


def synthetic(n: int, *, seed: int = 0) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """``n`` unit vectors, the last ``PLANTED_SHARE`` of them copies of earlier ones."""
    rng = np.random.default_rng(seed)
    planted = int(n * PLANTED_SHARE)
    base = n - planted
    clusters = max(10, base // 50)
    centres = _unit(rng.normal(size=(clusters, 32)) @ rng.normal(size=(32, DIM)))
    members = centres[rng.integers(0, clusters, base)]
    vectors = _unit(members + rng.normal(size=(base, DIM)) * CLUSTER_NOISE / math.sqrt(DIM))
    sources = rng.choice(base, planted, replace=False)
    copies = _unit(vectors[sources] + rng.normal(size=(planted, DIM)) * COPY_NOISE / math.sqrt(DIM))
    pairs = {(int(s), base + i) for i, s in enumerate(sources)}
    return np.concatenate([vectors, copies]).astype(np.float32), pairs


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _id(i: int) -> str:
    return f"{i:064x}"


def fill(client: MilvusClient, lite: bool, vectors: np.ndarray) -> tuple[VectorStore, float]:
    """A new indexed collection holding ``vectors``; returns it and the insert+index time."""
    store = VectorStore(client, "benchdup", lite=lite, timeout=600)
    name = store.create_collection(
        ModelStamp("synthetic", "bench", DIM), name=f"benchdup_{len(vectors)}_{time.time_ns()}"
    )
    pinned = VectorStore(client, name, lite=lite, timeout=600)
    started = time.perf_counter()
    for start in range(0, len(vectors), INSERT_BATCH):
        chunk = vectors[start : start + INSERT_BATCH]
        pinned.upsert(
            [Entry(_id(start + i), v, f"{_id(start + i)}.jpg") for i, v in enumerate(chunk)]
        )
    pinned.wait_for_index(serving=False, timeout=3600)
    return pinned, time.perf_counter() - started


def measure(store: VectorStore, method: str, planted: set[tuple[int, int]]) -> dict[str, Any]:
    found = find_groups(store, THRESHOLD, method=method)
    pairs = {tuple(sorted((int(p.a, 16), int(p.b, 16)))) for p in found.pairs}
    recovered = len(pairs & planted)
    return {
        "seconds": round(found.seconds, 2),
        "pairs_found": len(pairs),
        "planted_recovered": recovered,
        "planted": len(planted),
        "recall": round(recovered / len(planted), 4) if planted else None,
        "other_pairs": len(pairs - planted),
        "groups": len(found.groups),
    }


def run(
    *,
    sizes: list[int],
    backends: dict[str, tuple[MilvusClient, bool]],
    methods: list[str] | None = None,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, (client, lite) in backends.items():
        rows: dict[str, Any] = {}
        for n in sizes:
            vectors, planted = synthetic(n)
            store, fill_s = fill(client, lite, vectors)
            try:
                wanted = methods or (["exact", "range"] if n <= EXACT_UP_TO else ["range"])
                rows[str(n)] = {
                    "fill_s": round(fill_s, 1),
                    **{m: measure(store, m, planted) for m in wanted},
                }
            finally:
                client.drop_collection(store.alias)
            print(f"duplicates {name} {n}: {rows[str(n)]}", flush=True)
        results[name] = {"sizes": rows, "growth": _growth(rows)}
    return {
        "threshold": THRESHOLD,
        "dim": DIM,
        "planted_share": PLANTED_SHARE,
        "exact_max_rows": EXACT_MAX_ROWS,
        "results": results,
    }


def _growth(rows: dict[str, Any]) -> dict[str, float]:
    """The exponent k in time ~ N^k between consecutive sizes, per method."""
    out: dict[str, float] = {}
    sizes = sorted(rows, key=int)
    for a, b in zip(sizes, sizes[1:], strict=False):
        for method in ("exact", "range"):
            if method in rows[a] and method in rows[b]:
                ta, tb = rows[a][method]["seconds"], rows[b][method]["seconds"]
                if ta > 0 and tb > 0:
                    out[f"{method} {a}->{b}"] = round(
                        math.log(tb / ta) / math.log(int(b) / int(a)), 2
                    )
    return out
