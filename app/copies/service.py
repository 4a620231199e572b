"""What the copy commands and pages do, over explicit collaborators.

``calibrate_and_store`` measures and records a collection's threshold (the CLI,
the end of a reindex, ``trainer index``); ``duplicates`` runs the finder with the
collection's threshold and the gallery's "not duplicates" marks.
"""

from __future__ import annotations

from collections.abc import Callable

from app.copies.calibrate import calibrate
from app.copies.finder import Progress, find_groups
from app.copies.marks import Marks
from app.copies.report import DuplicateReport, build_report
from app.copies.threshold import Calibration, read_calibration, write_calibration
from app.gallery.storage import ImageStore
from app.model.encoder import Encoder
from app.vectors.store import VectorStore


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
    """Groups of copies at the collection's threshold (or ``threshold``)."""
    calibration = read_calibration(vectors)
    found = find_groups(
        vectors,
        threshold if threshold is not None else calibration.threshold,
        separator=marks.separator(),
        method=method,
        on_progress=on_progress,
    )
    return build_report(found, calibration, images, threshold)
