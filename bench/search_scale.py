"""Suite 3: search latency and recall@10 as the gallery grows, on Milvus Lite and a server.

Vectors are drawn near real embeddings: real MobileNetV2 embeddings of Grocery
photos, randomly projected to 384 dimensions (DINOv2-small's), serve as
centres, and each gallery vector is a centre plus noise, normalised. (Random
uniform vectors are HNSW's worst case and unlike any real gallery.) Recall is
against exact search computed with numpy over the same vectors.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from app.vectors.records import IndexParams, ModelStamp
from app.vectors.store import VectorStore
from bench.common import percentile

DIM = 384
NOISE = 0.6
QUERIES = 200
INSERT_BATCH = 5000


def centres(workdir: Path, count: int = 1000, *, quick: bool = False) -> tuple[np.ndarray, str]:
    """Real embeddings as cluster centres (random ones when ../shared is absent)."""
    from bench.data import grocery_split
    from bench.models import MOBILENET_V2, model_dirs

    cache = workdir / ("centres-quick.npy" if quick else "centres.npy")
    if cache.is_file():
        return np.load(cache), "real MobileNetV2 embeddings of Grocery photos, projected to 384-d"
    models = model_dirs(workdir)
    rows = grocery_split("train", 100 if quick else count)
    if MOBILENET_V2 not in models or not rows:
        rng = np.random.default_rng(1)
        return _unit(rng.normal(size=(count, DIM))), "random Gaussian centres (no ../shared data)"
    from app.model.encoder import Encoder
    from bench.encoder_speed import embed_files

    encoder = Encoder.from_pretrained(str(models[MOBILENET_V2]))
    real = embed_files(encoder, [p for p, _ in rows])
    projection = np.linalg.qr(np.random.default_rng(2).normal(size=(real.shape[1], DIM)))[0]
    result = _unit(real @ projection).astype(np.float32)
    np.save(cache, result)
    return result, "real MobileNetV2 embeddings of Grocery photos, projected to 384-d"


def synthetic(base: np.ndarray, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = base[rng.integers(0, len(base), size=count)]
    noise = rng.normal(size=(count, DIM)).astype(np.float32) * (NOISE / np.sqrt(DIM))
    return _unit(picks + noise).astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def run(workdir: Path, *, sizes: list[int], backends: dict[str, Any], efs: list[int],
        quick: bool = False) -> dict[str, Any]:
    """``backends``: name -> (MilvusClient, is_lite)."""
    base, origin = centres(workdir, quick=quick)
    queries = synthetic(base, 20 if quick else QUERIES, seed=999)
    out: dict[str, Any] = {"dim": DIM, "vectors": origin, "noise": NOISE, "queries": len(queries),
                           "results": {}}
    largest = synthetic(base, max(sizes), seed=7)
    for backend, (client, lite) in backends.items():
        for size in sizes:
            vectors = largest[:size]
            exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
            out["results"][f"{backend}/{size}"] = measure(client, lite, vectors, queries, exact,
                                                          efs)
    return out


def measure(client: Any, lite: bool, vectors: np.ndarray, queries: np.ndarray, exact: np.ndarray,
            efs: list[int]) -> dict[str, Any]:
    alias = f"bench{len(vectors)}_{int(time.time())}"
    store = VectorStore(client, alias, params=IndexParams(), lite=lite, timeout=600)
    collection = store.create_collection(ModelStamp("bench", "synthetic", DIM))
    started = time.perf_counter()
    for i in range(0, len(vectors), INSERT_BATCH):
        chunk = vectors[i : i + INSERT_BATCH]
        client.insert(collection, [
            {"id": f"{i + j:064x}", "vector": v.tolist(), "key": f"{i + j:064x}.jpg", "label": "",
             "metadata": {}} for j, v in enumerate(chunk)], timeout=600)
    inserted = time.perf_counter()
    state = store.wait_for_index(collection, serving=False, timeout=3600)
    indexed = time.perf_counter()
    store.switch_to(collection)
    result: dict[str, Any] = {
        "rows": len(vectors),
        "insert_rows_per_s": len(vectors) / (inserted - started),
        "index_build_s": indexed - inserted,
        "index_state": state,
        "by_ef": {},
    }
    for ef in efs:
        store.params = IndexParams(ef=ef)
        store.search(queries[0], 10)  # warm
        latencies, recalls = [], []
        for query, truth in zip(queries, exact, strict=True):
            start = time.perf_counter()
            hits = store.search(query, 10)
            latencies.append((time.perf_counter() - start) * 1000)
            found = {int(h.id, 16) for h in hits}
            recalls.append(len(found & set(truth.tolist())) / 10)
        result["by_ef"][ef] = {"p50_ms": percentile(latencies, 50),
                               "p95_ms": percentile(latencies, 95),
                               "recall_at_10": float(np.mean(recalls))}
    client.release_collection(collection)
    client.drop_alias(alias)
    client.drop_collection(collection)
    return result
