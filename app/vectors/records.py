"""What Milvus holds for Lookalike: the row, the hit, the model stamp, index parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.config import Config

ID_LENGTH = 64  # sha256 hex of the image bytes
KEY_LENGTH = 128
LABEL_LENGTH = 512
OUTPUT_FIELDS = ["key", "label", "metadata"]


@dataclass(frozen=True)
class IndexParams:
    """HNSW build and search parameters (Milvus names: M, efConstruction, ef)."""

    m: int = Config.HNSW_M
    ef_construction: int = Config.HNSW_EF_CONSTRUCTION
    ef: int = Config.SEARCH_EF


@dataclass(frozen=True)
class ModelStamp:
    """Which model made a collection's vectors: recorded at creation, checked at use."""

    name: str
    fingerprint: str
    dim: int


@dataclass(frozen=True)
class Entry:
    """One gallery image as a row: content hash, vector, store key, label, metadata."""

    id: str
    vector: np.ndarray
    key: str
    label: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    id: str
    key: str
    score: float
    label: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class CollectionInfo:
    alias: str
    collection: str
    stamp: ModelStamp | None
    created: str
    rows: int
    index_type: str
    metric: str
    index_params: dict[str, Any]
    index_state: str  # "finished", "building (n/m rows)", or "background (Milvus Lite)"


def entry_from_row(row: dict[str, Any]) -> Entry:
    vector = row.get("vector")
    return Entry(
        id=str(row["id"]),
        vector=np.zeros(0, np.float32) if vector is None else np.asarray(vector, np.float32),
        key=row["key"],
        label=row.get("label") or "",
        metadata=row.get("metadata") or {},
    )

