"""Search a gallery through the app's Milvus collection code, in a throwaway Milvus Lite."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from app.config import Config
from app.model.encoder import Encoder
from app.vectors.records import Entry, IndexParams, ModelStamp
from app.vectors.store import VectorStore
from trainer.data import Sample

INSERT_BATCH = 1000


def hnsw_search(encoder: Encoder, queries: np.ndarray, gallery: np.ndarray,
                samples: list[Sample], k: int, folder: Path, *,
                ef: int = Config.SEARCH_EF) -> np.ndarray:
    """Gallery indices of each query's ``k`` nearest rows, as ``VectorStore.search`` finds them.

    The collection is the app's: same schema, HNSW/COSINE index and parameters.
    """
    from pymilvus import MilvusClient

    # Milvus Lite's in-process gRPC server logs calls it does not implement (timestamps
    # the client asks for) as errors; they change nothing here.
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
    folder.mkdir(parents=True, exist_ok=True)
    client = MilvusClient(str(folder / "eval.db"))
    try:
        store = VectorStore(client, "eval", params=IndexParams(ef=ef), lite=True, timeout=120.0)
        name = store.create_collection(ModelStamp(encoder.name, encoder.fingerprint, encoder.dim))
        for start in range(0, len(gallery), INSERT_BATCH):
            store.upsert([Entry(str(i), gallery[i], str(i), samples[i].label)
                          for i in range(start, min(start + INSERT_BATCH, len(gallery)))], name)
        store.wait_for_index(name, serving=False)
        k = min(k, len(gallery))
        ranked = np.empty((len(queries), k), dtype=np.int64)
        for i, vector in enumerate(tqdm(queries, desc="HNSW search", unit="query", mininterval=2)):
            hits = [int(hit.key) for hit in store.search(vector, k, collection=name)]
            ranked[i] = hits + [hits[-1]] * (k - len(hits))
        return ranked
    finally:
        client.close()
