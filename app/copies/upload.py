"""At upload: the nearest existing copy of each new image, and refusing copies.

Every ingest path (admin upload, ``gallery add``, the JSON API) builds its
``Ingestor`` with a ``CopyCheck``; the ingestor asks it, once per batch after
embedding, which new images are copies of an image already in the collection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.vectors.records import Hit
from app.vectors.store import VectorStore


@dataclass(frozen=True)
class CopyCheck:
    """The collection's copy threshold, and whether a copy is refused or only reported."""

    threshold: float
    reject: bool = False

    def nearest(
        self, vectors: VectorStore, embedded: np.ndarray, collection: str | None = None
    ) -> list[Hit | None]:
        """For each vector, its best match at or above the threshold, or None."""
        found: list[Hit | None] = []
        for vector in embedded:
            hits = vectors.search(vector, 1, collection=collection, min_score=self.threshold)
            found.append(hits[0] if hits else None)
        return found

    def reason(self, hit: Hit) -> str:
        return (
            f"a copy of {hit.key}, already in the gallery (score {hit.score:.3f}, copy "
            f"threshold {self.threshold:.3f})"
        )


def copy_check(*, reject: bool | None = None) -> CopyCheck:
    """The check for the request's serving collection (in an app context);
    ``reject`` defaults to LOOKALIKE_REJECT_COPIES."""
    from flask import current_app

    from app.copies.threshold import copy_threshold

    refuse = bool(current_app.config["REJECT_COPIES"]) if reject is None else reject
    return CopyCheck(copy_threshold(), refuse)
