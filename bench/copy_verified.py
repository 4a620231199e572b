"""Suite 9b, second stage: the embedding proposes, geometric verification decides.

Mirrors the app (app/copies/decision.py): both sides of every pair are compared as
the gallery's thumbnails of them; only pairs at or above the calibrated candidate
threshold are verified.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from app.copies import verify
from app.copies.verified import Verified, verify_sample


def thumbnails(images: list[Image.Image]) -> list[Image.Image]:
    """What the gallery stores for each image, as verification reads it back."""
    return [verify.as_stored(image) for image in images]


def calibrate(
    images: list[Image.Image],
    base: np.ndarray,
    copies: np.ndarray,
    near: np.ndarray,
    *,
    seed: int,
) -> tuple[Verified, int]:
    """The app's verified calibration (``verify_sample``) on the calibration split,
    its gallery thumbnails made in memory; ``near``: each image's nearest others."""
    thumbs = [verify.features(t) for t in thumbnails(images)]
    return verify_sample(
        images,
        [str(i) for i in range(len(images))],
        base,
        copies,
        [([str(n) for n in row], base[row]) for row in near],
        lambda key: thumbs[int(key)],
        seed=seed,
    )


def verify_candidates(
    copies: list[Image.Image],
    originals: list[Image.Image],
    copy_scores: np.ndarray,
    orig_scores: np.ndarray,
    candidate: float,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Verified scores (0 below ``candidate``) of every copy x original pair and every
    pair of originals (upper triangle), and how many pairs were verified."""
    thumbs = thumbnails(originals)
    gallery = [verify.features(t) for t in thumbs]
    copy_ver = np.zeros_like(copy_scores, np.float32)
    current, query = -1, None
    for c, o in zip(*np.nonzero(copy_scores >= candidate), strict=True):  # row by row
        if c != current:
            current, query = c, verify.query_features(verify.as_stored(copies[c]))
        copy_ver[c, o] = verify.verified_score(query, gallery[o])
    orig_ver = np.zeros_like(orig_scores, np.float32)
    upper = np.triu(np.ones_like(orig_scores, bool), 1)
    pairs = np.nonzero(upper & (orig_scores >= candidate))
    as_query: dict[int, verify.QueryFeatures] = {}
    for a, b in zip(*pairs, strict=True):
        if a not in as_query:
            as_query[a] = verify.query_features(thumbs[a])
        orig_ver[a, b] = verify.verified_score(as_query[a], gallery[b])
    return copy_ver, orig_ver[upper], int((copy_scores >= candidate).sum() + len(pairs[0]))


def score(
    copy_emb: np.ndarray,
    copy_ver: np.ndarray,
    pos_mask: np.ndarray,
    orig_emb: np.ndarray,
    orig_ver: np.ndarray,
    rule: Verified,
) -> dict[str, Any]:
    """Precision and recall of the two-stage rule over copy pairs and original pairs."""
    copy_hit = (copy_emb >= rule.candidate) & (copy_ver >= rule.verified)
    orig_hit = (orig_emb >= rule.candidate) & (orig_ver >= rule.verified)
    tp = int(copy_hit[pos_mask].sum())
    fp = int(copy_hit[~pos_mask].sum() + orig_hit.sum())
    positives = int(pos_mask.sum())
    return {
        "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
        "recall": round(tp / positives, 4) if positives else 0.0,
        "false_pairs": fp,
    }
