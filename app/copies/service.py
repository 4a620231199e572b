"""What the copy commands and pages do, over explicit collaborators.

``calibrate_and_store`` measures and records a collection's threshold (the CLI,
the end of a reindex, ``trainer index``); ``duplicates`` runs the finder with the
collection's threshold and the gallery's "not duplicates" marks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from app.copies.calibrate import calibrate
from app.copies.decision import CopyJudge, CopyRule
from app.copies.finder import Progress, find_groups
from app.copies.marks import Marks
from app.copies.report import DuplicateReport, build_report
from app.copies.threshold import Calibration, read_calibration, write_calibration
from app.exceptions import LookalikeError
from app.gallery.storage import ImageStore
from app.model.encoder import Encoder
from app.vectors.store import VectorStore

log = logging.getLogger(__name__)


def calibrate_and_store(
    encoder: Encoder,
    vectors: VectorStore,
    images: ImageStore,
    *,
    sample: int,
    max_pixels: int,
    on_progress: Callable[[str], None] | None = None,
) -> Calibration:
    """Calibrate the collection ``vectors`` is pinned to and store the result in it."""
    calibration = calibrate(
        encoder, vectors, images, sample=sample, max_pixels=max_pixels, on_progress=on_progress
    )
    write_calibration(vectors, calibration)
    return calibration


def duplicates(
    vectors: VectorStore,
    images: ImageStore | None,
    marks: Marks,
    *,
    threshold: float | None = None,
    method: str = "auto",
    on_progress: Progress | None = None,
) -> DuplicateReport:
    """Groups of copies by the collection's decision (app/copies/decision.py), or at
    the embedding score ``threshold`` alone when one is given."""
    calibration = read_calibration(vectors)
    rule = CopyRule.of(calibration)
    judge = CopyJudge(rule, images) if threshold is None and rule.verifies else None
    found = find_groups(
        vectors,
        threshold if threshold is not None else rule.floor,
        separator=marks.separator(),
        method=method,
        on_progress=on_progress,
        judge=judge,
    )
    return build_report(found, calibration, images, threshold)


def calibrate_new_collection(
    encoder: Encoder,
    vectors: VectorStore,
    collection: str,
    images: ImageStore,
    *,
    sample: int,
    max_pixels: int,
) -> Calibration | None:
    """Calibrate a collection a reindex or ``trainer index`` just built; None (and a
    warning) when it cannot be done, since the index itself is fine without it."""
    if sample <= 0:
        return None
    pinned = VectorStore(
        vectors.client,
        collection,
        params=vectors.params,
        lite=vectors.lite,
        timeout=vectors.timeout,
    )
    try:
        return calibrate_and_store(encoder, pinned, images, sample=sample, max_pixels=max_pixels)
    except LookalikeError as exc:
        log.warning("the copy threshold of %s was not calibrated: %s", collection, exc.message)
        return None
