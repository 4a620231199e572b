"""At upload: the nearest existing copy of each new image, and refusing copies.

Every ingest path (admin upload, ``gallery add``, the JSON API) builds its
``Ingestor`` with a ``CopyCheck``; the ingestor asks it, once per batch after
embedding, which new images are copies of an image already in the collection.
The decision is the collection's (decision.py): candidates from the vector store,
verified against the new image's stored thumbnail when the calibration says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.copies.decision import CopyJudge
from app.vectors.records import Hit
from app.vectors.store import VectorStore

CANDIDATES = 5  # nearest images checked per new image


@dataclass(frozen=True)
class CopyCheck:
    """The collection's copy decision, and whether a copy is refused or only reported."""

    judge: CopyJudge
    reject: bool = False

    def nearest(
        self,
        vectors: VectorStore,
        embedded: np.ndarray,
        collection: str | None = None,
        keys: list[str] | None = None,
    ) -> list[Hit | None]:
        """For each vector (the new image ``keys[i]``), its best match that is a copy, or None."""
        found: list[Hit | None] = []
        rule = self.judge.rule
        for n, vector in enumerate(embedded):
            limit = CANDIDATES if rule.verifies else 1
            hits = vectors.search(vector, limit, collection=collection, min_score=rule.floor)
            query = self.judge.query(key=keys[n] if keys else "")
            found.append(next((h for h in hits if query.is_copy(h.key, h.score)), None))
        return found

    def reason(self, hit: Hit) -> str:
        how = "verified" if self.judge.rule.verifies else "copy threshold"
        limit = self.judge.rule.floor if self.judge.rule.verifies else self.judge.rule.threshold
        return (
            f"a copy of {hit.key}, already in the gallery (score {hit.score:.3f}, {how} "
            f"from {limit:.3f})"
        )


def copy_check(*, reject: bool | None = None) -> CopyCheck:
    """The check for the request's serving collection (in an app context);
    ``reject`` defaults to LOOKALIKE_REJECT_COPIES."""
    from flask import current_app

    from app.copies.decision import copy_judge

    refuse = bool(current_app.config["REJECT_COPIES"]) if reject is None else reject
    return CopyCheck(copy_judge(), refuse)
