"""Calibrating the verified copy rule on the same sample as the embedding threshold.

The embedding proposes, verification decides (decision.py). The candidate threshold
is low: it lets through CANDIDATE_RECALL of the sample's synthetic copies. Among
the candidates, the copy pairs and the hard negatives (the sampled image and its
copies against its nearest other gallery images) get their verified scores, and
the verified threshold is the lowest with the target precision, as for the
embedding alone (``choose_threshold``). Neighbour pairs that verify like a typical
synthetic copy are left out as most likely real copies in the gallery; unlike the
embedding's, this keeps the hardest negatives (another shot of the same scene
scores high on the embedding but verifies low).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from app.copies import verify
from app.copies.calibrate import choose_threshold
from app.copies.threshold import TARGET_PRECISION
from app.copies.transforms import TRAINING_KINDS, make_copies

CANDIDATE_RECALL = 0.99  # share of the sample's copies the candidate threshold lets through

FeaturesOf = Callable[[str], "verify.Features | None"]  # a gallery image's, by key


@dataclass(frozen=True)
class Verified:
    """A calibrated two-stage rule and what it measured on the calibration sample."""

    candidate: float  # embedding score from which a pair is verified
    verified: float  # verified score from which a candidate is a copy
    precision: float
    recall: float  # of all copy pairs, candidates or not
    suspected: int = 0  # neighbour pairs left out as likely real copies


def candidate_threshold(positives: np.ndarray) -> float:
    return float(np.quantile(np.asarray(positives), 1.0 - CANDIDATE_RECALL))


def choose_verified(
    pos_emb: np.ndarray,
    pos_ver: np.ndarray,
    neg_emb: np.ndarray,
    neg_ver: np.ndarray,
    *,
    target: float = TARGET_PRECISION,
) -> Verified:
    """The candidate threshold and the lowest verified score with ``target`` precision
    among the candidates; recall counts every copy pair."""
    pos_emb, neg_emb = np.asarray(pos_emb), np.asarray(neg_emb)
    pos_ver, neg_ver = np.asarray(pos_ver), np.asarray(neg_ver)
    candidate = candidate_threshold(pos_emb)
    pos = pos_ver[pos_emb >= candidate]
    likely_copy = neg_ver >= np.median(pos_ver)
    neg = neg_ver[(neg_emb >= candidate) & ~likely_copy]
    point = choose_threshold(pos, neg, target=target)
    passed = point.recall * len(pos) / max(1, len(pos_emb))
    return Verified(candidate, point.threshold, point.precision, passed, int(likely_copy.sum()))


def verify_sample(
    images: list[Image.Image],
    keys: list[str],
    base: np.ndarray,
    copies: np.ndarray,
    near: list[tuple[list[str], np.ndarray]],
    features_of: FeaturesOf,
    *,
    seed: int = 0,
) -> tuple[Verified, int]:
    """Calibrate the verified rule on the sampled ``images`` (gallery ``keys``, vectors
    ``base``, their copies' vectors ``copies``, made with the same seeds as
    ``copy_scores``) and each one's nearest other images (keys and vectors). Returns
    the rule and how many negative pairs it saw."""
    pos_emb: list[float] = []
    pos_ver: list[float] = []
    neg_emb: list[float] = []
    neg_ver: list[float] = []
    provisional = candidate_threshold((copies * base[:, None, :]).sum(-1).ravel())
    for i, image in enumerate(images):
        made = [c for _, c in make_copies(image, seed + i, TRAINING_KINDS)]
        queries = [verify.query_features(verify.as_stored(c)) for c in [image, *made]]
        own = features_of(keys[i])
        for j, vector in enumerate(copies[i]):
            pos_emb.append(float(vector @ base[i]))
            pos_ver.append(verify.verified_score(queries[j + 1], own) if own else 0.0)
        vectors = np.vstack([base[i : i + 1], copies[i]])
        for key, neighbour in zip(*near[i], strict=True):
            for query, score in zip(queries, vectors @ neighbour, strict=True):
                other = features_of(key) if score >= provisional else None
                neg_emb.append(float(score))
                neg_ver.append(verify.verified_score(query, other) if other else 0.0)
    rule = choose_verified(
        np.asarray(pos_emb), np.asarray(pos_ver), np.asarray(neg_emb), np.asarray(neg_ver)
    )
    return rule, len(neg_emb)
