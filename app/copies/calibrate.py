"""Calibrate a collection's copy threshold on synthetic copies of its own images.

A sample of gallery images (a few hundred at most) is copied in every
``TRAINING_KINDS`` way; originals and copies go through ``Encoder.embed``, the one
preprocessing path. Copy pairs are the positives; the negatives are the sampled
image and each of its copies against the image's nearest *other* gallery images
(hardest first: other shots of the same product or scene, similar but not copies).
The stored threshold is the lowest score at which at least ``TARGET_PRECISION`` of
the pairs above it are copies.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from app.config import Config
from app.copies.threshold import TARGET_PRECISION, Calibration
from app.copies.transforms import TRAINING_KINDS, Transform, make_copies
from app.exceptions import BadRequest, InvalidImage, NotFound
from app.gallery import imaging
from app.gallery.keys import original_name
from app.gallery.storage import ImageStore
from app.model.encoder import Encoder
from app.vectors.calls import milvus_call
from app.vectors.records import Entry
from app.vectors.store import VectorStore

if TYPE_CHECKING:
    from app.copies.verified import Verified

log = logging.getLogger(__name__)

SAMPLE_SIZE = 200  # gallery images copied; LOOKALIKE_COPY_CALIBRATION_SAMPLE overrides
NEIGHBOURS = 10  # distinct nearest neighbours scored per sampled image
CHUNK = 16  # originals embedded together with their copies


@dataclass(frozen=True)
class Scores:
    """Copy-pair scores by kind, and distinct-pair scores."""

    positives: dict[str, np.ndarray]
    negatives: np.ndarray

    def all_positives(self) -> np.ndarray:
        parts = list(self.positives.values())
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


@dataclass(frozen=True)
class Operating:
    """A threshold and the precision and recall a set of scores has at it."""

    threshold: float
    precision: float
    recall: float


def choose_threshold(
    positives: np.ndarray, negatives: np.ndarray, *, target: float = TARGET_PRECISION
) -> Operating:
    """The lowest threshold whose precision (copies among the pairs at or above it)
    reaches ``target``; candidates are the positive scores themselves.

    With no threshold reaching it, the one just above the highest negative
    (precision 1, whatever recall is left).
    """
    pos = np.sort(np.asarray(positives, np.float64))[::-1]
    neg = np.sort(np.asarray(negatives, np.float64))
    if not len(pos):
        raise BadRequest("Calibration needs at least one copy pair.")
    false = len(neg) - np.searchsorted(neg, pos, side="left")  # negatives >= each candidate
    true = len(pos) - np.searchsorted(pos[::-1], pos, side="left")  # positives >= it
    precision = true / (true + false)
    ok = np.nonzero(precision >= target)[0]
    if len(ok):
        best = ok[-1]  # the lowest qualifying score (pos is descending)
        return Operating(float(pos[best]), float(precision[best]), float(true[best] / len(pos)))
    above = float(np.nextafter(neg[-1], 2.0)) if len(neg) else float(pos[0])
    return operating_at(pos, neg, above)


def operating_at(positives: np.ndarray, negatives: np.ndarray, threshold: float) -> Operating:
    """Precision and recall of a given threshold (score >= threshold means copy)."""
    tp = int(np.count_nonzero(np.asarray(positives) >= threshold))
    fp = int(np.count_nonzero(np.asarray(negatives) >= threshold))
    precision = tp / (tp + fp) if tp + fp else 1.0
    return Operating(threshold, precision, tp / len(positives) if len(positives) else 0.0)


def drop_likely_copies(positives: np.ndarray, negatives: np.ndarray) -> tuple[np.ndarray, int]:
    """Negatives without the pairs that score like a typical synthetic copy (at or above
    the median copy score): those are most likely copies already in the gallery, which
    would otherwise push the threshold above the very copies it is meant to find.
    Returns the rest and how many were dropped."""
    cut = float(np.median(positives))
    kept = negatives[negatives < cut]
    return kept, int(len(negatives) - len(kept))


def sample_entries(store: VectorStore, size: int, *, seed: int = 0) -> list[Entry]:
    """Up to ``size`` rows drawn uniformly (reservoir sampling over one pass of ids)."""
    rng = random.Random(seed)
    chosen: list[Entry] = []
    for n, entry in enumerate(store.iterate()):
        if len(chosen) < size:
            chosen.append(entry)
        elif (j := rng.randint(0, n)) < size:
            chosen[j] = entry
    return chosen


def copy_scores(
    encoder: Encoder,
    images: Iterable[Image.Image],
    *,
    seed: int = 0,
    kinds: dict[str, Transform] = TRAINING_KINDS,
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Embeddings of the originals, each kind's copy-to-original scores, and the copies'
    embeddings (originals x kinds x dim)."""
    originals: list[np.ndarray] = []
    made_all: list[np.ndarray] = []
    scores: dict[str, list[float]] = {kind: [] for kind in kinds}
    chunk: list[Image.Image] = []

    def flush(start: int) -> None:
        copies = [make_copies(image, seed + start + i, kinds) for i, image in enumerate(chunk)]
        flat = [image for pairs in copies for _, image in pairs]
        vectors = encoder.embed([*chunk, *flat])
        base, made = vectors[: len(chunk)], vectors[len(chunk) :]
        originals.append(base)
        made_all.append(made.reshape(len(chunk), len(kinds), -1))
        for i, pairs in enumerate(copies):
            for j, (kind, _) in enumerate(pairs):
                scores[kind].append(float(made[i * len(kinds) + j] @ base[i]))

    count = 0
    for image in images:
        chunk.append(image)
        if len(chunk) == CHUNK:
            flush(count)
            count += len(chunk)
            chunk = []
    if chunk:
        flush(count)
    if not originals:
        empty = np.zeros((0, encoder.dim), np.float32)
        return empty, {k: np.zeros(0, np.float32) for k in kinds}, empty[:, None, :]
    return (
        np.concatenate(originals),
        {k: np.asarray(v, np.float32) for k, v in scores.items()},
        np.concatenate(made_all),
    )


def hard_negatives(
    originals: np.ndarray, copies: np.ndarray, neighbours: list[np.ndarray]
) -> np.ndarray:
    """Scores of each sampled image, and of each of its copies, against the image's
    nearest *other* gallery images (``neighbours[i]``: their vectors).

    The copies count too because that is how copies meet the gallery: a copy at
    upload, or in a duplicate pass, is compared with everything near its original,
    so each copy brings its own set of hard negatives with its one positive.
    """
    found: list[np.ndarray] = []
    for original, made, near in zip(originals, copies, neighbours, strict=True):
        if len(near):
            found += [near @ original, (made @ near.T).ravel()]
    return np.concatenate(found).astype(np.float32) if found else np.zeros(0, np.float32)


def neighbour_vectors(
    store: VectorStore, vectors: np.ndarray, ids: list[str], *, k: int = NEIGHBOURS
) -> list[tuple[list[str], np.ndarray]]:
    """The keys and vectors of each image's ``k`` nearest other gallery images."""
    found = []
    for vector, id_ in zip(vectors, ids, strict=True):
        others = [h.id for h in store.search(vector, k + 1) if h.id != id_][:k]
        found.append(_vectors(store, others))
    return found


@milvus_call("reading vectors")
def _vectors(store: VectorStore, ids: list[str]) -> tuple[list[str], np.ndarray]:
    if not ids:
        return [], np.zeros((0, 0), np.float32)
    rows = store.client.query(
        store.alias,
        filter=f"id in {json.dumps(ids)}",
        output_fields=["key", "vector"],
        timeout=store.timeout,
    )
    return [r["key"] for r in rows], np.asarray([r["vector"] for r in rows], np.float32)


def calibrate(
    encoder: Encoder,
    store: VectorStore,
    images: ImageStore,
    *,
    sample: int = SAMPLE_SIZE,
    seed: int = 0,
    max_pixels: int = Config.MAX_IMAGE_PIXELS,
    on_progress: Callable[[str], None] | None = None,
) -> Calibration:
    """Measure the collection's copy threshold (it is not stored here: ``write_calibration``)."""
    say = on_progress or (lambda _: None)
    entries = sample_entries(store, sample, seed=seed)
    if len(entries) < 2:
        raise BadRequest("Calibrating needs at least two images in the gallery.")
    say(f"copying {len(entries)} gallery images {len(TRAINING_KINDS)} ways")
    kept, decoded = _decode_all(entries, images, max_pixels)
    if len(kept) < 2:
        raise BadRequest("Calibrating needs at least two readable images in the gallery.")
    originals, positives, copies = copy_scores(encoder, decoded, seed=seed)
    say("scoring the nearest other gallery images")
    near = neighbour_vectors(store, originals, [e.id for e in kept])
    negatives = hard_negatives(originals, copies, [vectors for _, vectors in near])
    pos = np.concatenate(list(positives.values()))
    negatives, suspected = drop_likely_copies(pos, negatives)
    point = choose_threshold(pos, negatives)
    say("verifying copies and neighbours (geometric verification)")
    rule = _verified(decoded, kept, originals, copies, near, images, seed)
    return Calibration(
        threshold=round(point.threshold, 6),
        calibrated=True,
        precision=round(point.precision, 4),
        recall=round(point.recall, 4),
        originals=len(kept),
        copies=len(pos),
        negatives=len(negatives),
        suspected=suspected,
        model=encoder.name,
        date=datetime.now(UTC).isoformat(timespec="seconds"),
        candidate=round(rule.candidate, 6),
        verified=round(rule.verified, 4),
        verified_precision=round(rule.precision, 4),
        verified_recall=round(rule.recall, 4),
    )


def _verified(
    decoded: list[Image.Image],
    kept: list[Entry],
    originals: np.ndarray,
    copies: np.ndarray,
    near: list[tuple[list[str], np.ndarray]],
    images: ImageStore,
    seed: int,
) -> Verified:
    """The verified rule on the same sample, against the gallery's stored thumbnails."""
    from app.copies.decision import CopyJudge, CopyRule
    from app.copies.verified import verify_sample  # it builds on choose_threshold above

    judge = CopyJudge(CopyRule(1.0), images)
    rule, _ = verify_sample(
        decoded,
        [e.key for e in kept],
        originals,
        copies,
        near,
        judge.gallery,
        seed=seed,
    )
    return rule


def _decode_all(
    entries: list[Entry], images: ImageStore, max_pixels: int
) -> tuple[list[Entry], list[Image.Image]]:
    kept, decoded = [], []
    for entry in entries:
        try:
            image = imaging.decode(images.get(original_name(entry.key)), max_pixels=max_pixels)
        except (InvalidImage, NotFound) as exc:
            log.warning("calibration skips %s: %s", entry.key, exc.message)
            continue
        kept.append(entry)
        decoded.append(image.image)
    return kept, decoded
