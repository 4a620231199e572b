"""Suite 9b: copy detection on real photos, the calibrated threshold against pHash.

Originals: Grocery shelf photos taken in runs of consecutive shots of one product
(near-identical scenes that are not copies: the hard negatives) and Imagenette
photos. A calibration split gets the app's calibration (copies of the training
kinds, negatives = nearest distinct neighbours, lowest threshold with 99%
precision); the test split gets fresh copies of every kind, the held-out ones
included. Precision and recall are counted over *every* pair in the test set:
each copy against every gallery image (its original is the one positive), and
every pair of originals. pHash (imagehash, Hamming distance on 64 bits) is scored
on the same pairs, at its usual threshold and at the threshold that matches the
embedding's precision. The verified rule (geometric verification of the pairs the
embedding proposes, bench/copy_verified.py) is calibrated and scored beside them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from app.copies.calibrate import (
    NEIGHBOURS,
    choose_threshold,
    copy_scores,
    drop_likely_copies,
    hard_negatives,
)
from app.copies.transforms import ALL_KINDS, HELD_OUT_KINDS, TRAINING_KINDS, make_copies
from bench import copy_verified
from bench.common import GROCERY, MOBILENET, SHARED

IMAGENETTE = SHARED / "datasets" / "imagenette-val" / "val"
PHASH_USUAL = 10  # Hamming distance (of 64 bits) at or below which pHash says "copy"
INSTALL = "pip install -r requirements-eval.txt"


def originals(grocery: int, imagenette: int, run: int = 5) -> list[tuple[Path, str]]:
    """Grocery photos in runs of ``run`` consecutive shots of each product (the hard
    negatives), then Imagenette photos spread over its classes."""
    by_product: dict[str, list[Path]] = {}
    for line in (GROCERY / "train.txt").read_text().splitlines():
        path = line.split(",")[0].strip()
        by_product.setdefault(str(Path(path).parent), []).append(GROCERY / path)
    chosen = [(f, product) for product in sorted(by_product) for f in by_product[product][:run]][
        :grocery
    ]
    files = sorted(IMAGENETTE.glob("*/*.JPEG"))
    step = max(1, len(files) // imagenette)
    chosen += [(f, f.parent.name) for f in files[::step][:imagenette]]
    return chosen


def _load(paths: list[Path]) -> list[Image.Image]:
    out = []
    for path in paths:
        with Image.open(path) as image:
            out.append(image.convert("RGB"))
    return out


def _nearest_other(base: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` nearest other rows (indices), as the app's neighbour search."""
    scores = base @ base.T
    np.fill_diagonal(scores, -np.inf)
    return np.argsort(scores, axis=1)[:, -k:]


def run(*, quick: bool = False, seed: int = 0) -> dict[str, Any]:
    try:
        import imagehash  # the baseline; requirements-eval.txt
    except ImportError:
        return {"skipped": f"imagehash is not installed ({INSTALL})"}
    missing = [
        str(p)
        for p in (MOBILENET / "config.json", GROCERY / "train.txt", IMAGENETTE)
        if not p.exists()
    ]
    if missing:
        return {"skipped": f"the shared model or data is absent: {', '.join(missing)}"}

    from app.model.encoder import Encoder

    started = time.perf_counter()
    encoder = Encoder.from_pretrained(str(MOBILENET), backend="torch")
    cal_n, grocery, imagenette = (16, 24, 16) if quick else (200, 400, 350)
    listing = originals(grocery=grocery, imagenette=imagenette)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(listing))
    cal_idx, test_idx = sorted(order[:cal_n]), sorted(order[cal_n:])
    images = _load([p for p, _ in listing])

    # Calibration, as the app does it (numpy neighbours instead of Milvus).
    cal_images = [images[i] for i in cal_idx]
    cal_base, cal_pos, cal_copies = copy_scores(encoder, cal_images, seed=seed)
    cal_all = np.concatenate(list(cal_pos.values()))
    near = _nearest_other(cal_base, NEIGHBOURS)
    all_neg = hard_negatives(cal_base, cal_copies, [cal_base[i] for i in near])
    cal_neg, suspected = drop_likely_copies(cal_all, all_neg)
    point = choose_threshold(cal_all, cal_neg)
    threshold = point.threshold
    unfiltered = choose_threshold(cal_all, all_neg).threshold
    verified, verified_negatives = copy_verified.calibrate(
        cal_images, cal_base, cal_copies, near, seed=seed
    )
    calibrated_at = time.perf_counter()

    # Test: every pair of the test split.
    test_images = [images[i] for i in test_idx]
    labels = [listing[i][1] for i in test_idx]
    base = encoder.embed(test_images)
    copies, owner, kinds = [], [], []
    for n, image in enumerate(test_images):
        for kind, copy in make_copies(image, 10_000 + seed + n, ALL_KINDS):
            copies.append(copy)
            owner.append(n)
            kinds.append(kind)
    copy_vecs = np.concatenate(
        [encoder.embed(copies[i : i + 64]) for i in range(0, len(copies), 64)]
    )
    owner_a, kinds_a = np.asarray(owner), np.asarray(kinds)
    copy_scores_all = copy_vecs @ base.T  # (copies, originals)
    pos_mask = np.zeros_like(copy_scores_all, bool)
    pos_mask[np.arange(len(owner)), owner_a] = True
    orig_pairs = base @ base.T
    upper = np.triu(np.ones_like(orig_pairs, bool), 1)
    verifying = time.perf_counter()
    copy_ver, orig_ver, verified_pairs = copy_verified.verify_candidates(
        copies, test_images, copy_scores_all, orig_pairs, verified.candidate
    )
    verify_seconds = time.perf_counter() - verifying

    phashes = np.asarray([_word(imagehash.phash(im)) for im in test_images])
    copy_hashes = np.asarray([_word(imagehash.phash(im)) for im in copies])
    copy_dist = np.bitwise_count(copy_hashes[:, None] ^ phashes[None, :]).astype(np.int16)
    orig_dist = np.bitwise_count(phashes[:, None] ^ phashes[None, :]).astype(np.int16)

    same_product = np.asarray(labels)[:, None] == np.asarray(labels)[None, :]
    result: dict[str, Any] = {
        "model": "MobileNetV2 (ImageNet, shared)",
        "originals": len(listing),
        "calibration": {
            "originals": cal_n,
            "kinds": list(TRAINING_KINDS),
            "threshold": round(threshold, 4),
            "precision": round(point.precision, 4),
            "recall": round(point.recall, 4),
            "copy_pairs": int(sum(len(v) for v in cal_pos.values())),
            "neighbour_pairs": int(len(cal_neg)),
            "left_out_as_likely_copies": suspected,
            "threshold_without_leaving_out": round(unfiltered, 4),
            "verified": {
                "candidate": round(verified.candidate, 4),
                "verified_score": round(verified.verified, 2),
                "precision": round(verified.precision, 4),
                "recall": round(verified.recall, 4),
                "neighbour_pairs": verified_negatives,
                "left_out_as_likely_copies": verified.suspected,
                "seconds": round(calibrated_at - started, 1),
            },
        },
        "test": {
            "originals": len(test_idx),
            "grocery": sum(1 for i in test_idx if "/" in listing[i][1]),
            "copies": len(copies),
            "negative_pairs": int((~pos_mask).sum() + upper.sum()),
            "same_product_pairs": int((same_product & upper).sum()),
            "verified_pairs": verified_pairs,
            "verify_seconds": round(verify_seconds, 1),
        },
    }
    result["embedding"] = {}
    result["phash"] = {}
    result["verified"] = {}
    for group, members in (
        ("training kinds", list(TRAINING_KINDS)),
        ("held-out kinds", list(HELD_OUT_KINDS)),
    ):
        rows = np.isin(kinds_a, members)
        emb = _score(copy_scores_all[rows], pos_mask[rows], orig_pairs[upper], threshold)
        usual = _score(-copy_dist[rows], pos_mask[rows], -orig_dist[upper], -PHASH_USUAL)
        matched = _phash_at_precision(
            copy_dist[rows], pos_mask[rows], orig_dist[upper], emb["precision"]
        )
        result["embedding"][group] = emb
        checked = copy_verified.score(
            copy_scores_all[rows],
            copy_ver[rows],
            pos_mask[rows],
            orig_pairs[upper],
            orig_ver,
            verified,
        )
        result["verified"][group] = {
            **checked,
            "phash_at_equal_precision": _phash_at_precision(
                copy_dist[rows], pos_mask[rows], orig_dist[upper], checked["precision"]
            ),
        }
        # What the embedding could do at pHash's usual precision, with the threshold
        # chosen on the test set itself (an upper bound, not what calibration gives).
        result.setdefault("embedding_oracle", {})[group] = _embedding_at_precision(
            copy_scores_all[rows], pos_mask[rows], orig_pairs[upper], usual["precision"]
        )
        result["phash"][group] = {f"hamming<={PHASH_USUAL}": usual, "at equal precision": matched}
    rows = np.isin(kinds_a, list(TRAINING_KINDS))
    result["embedding_at_threshold_without_leaving_out"] = _score(
        copy_scores_all[rows], pos_mask[rows], orig_pairs[upper], unfiltered
    )
    per_kind = {}
    for kind in ALL_KINDS:
        rows = kinds_a == kind
        hit = copy_scores_all[rows][pos_mask[rows]] >= threshold
        ph = copy_dist[rows][pos_mask[rows]] <= PHASH_USUAL
        checked = (copy_scores_all[rows] >= verified.candidate) & (
            copy_ver[rows] >= verified.verified
        )
        per_kind[kind] = {
            "recall": round(float(hit.mean()), 4),
            "verified_recall": round(float(checked[pos_mask[rows]].mean()), 4),
            "phash_recall": round(float(ph.mean()), 4),
        }
    result["per_kind"] = per_kind
    result["hardest_same_product"] = (
        round(float(orig_pairs[same_product & upper].max()), 4)
        if (same_product & upper).any()
        else None
    )
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _word(h: Any) -> np.uint64:
    """A 64-bit pHash as one integer, for a vectorised Hamming distance."""
    return np.uint64(int(str(h), 16))


def _score(
    copy_scores: np.ndarray, pos_mask: np.ndarray, orig_scores: np.ndarray, threshold: float
) -> dict[str, Any]:
    """Precision and recall of "score >= threshold" over copy pairs and original pairs."""
    tp = int((copy_scores[pos_mask] >= threshold).sum())
    fp = int((copy_scores[~pos_mask] >= threshold).sum() + (orig_scores >= threshold).sum())
    positives = int(pos_mask.sum())
    return {
        "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
        "recall": round(tp / positives, 4) if positives else 0.0,
        "false_pairs": fp,
    }


def _embedding_at_precision(
    copy_scores: np.ndarray, pos_mask: np.ndarray, orig_scores: np.ndarray, precision: float
) -> dict[str, Any]:
    """The lowest threshold whose precision on these pairs is at least ``precision``."""
    best: dict[str, Any] = {"threshold": None, "precision": 1.0, "recall": 0.0}
    for t in np.arange(0.99, 0.5, -0.005):
        score = _score(copy_scores, pos_mask, orig_scores, float(t))
        if score["precision"] < precision:
            break
        best = {"threshold": round(float(t), 3), **score}
    return best


def _phash_at_precision(
    copy_dist: np.ndarray, pos_mask: np.ndarray, orig_dist: np.ndarray, precision: float
) -> dict[str, Any]:
    """pHash at the largest Hamming threshold whose precision is at least ``precision``."""
    best = {"hamming": -1, "precision": 1.0, "recall": 0.0, "false_pairs": 0}
    for h in range(0, 33):
        score = _score(-copy_dist, pos_mask, -orig_dist, -h)
        if score["precision"] >= precision:
            best = {"hamming": h, **score}
    return best
