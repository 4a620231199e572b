"""Geometric verification: are two images the same pixels, up to a crop, a resize, a flip?

A global embedding scores another shot of the same scene as high as a copy. Local
features tell them apart: a copy's matched keypoints all agree with ONE similarity
transform (crop, resize, small rotation), while two shots of a scene differ by
parallax and perspective and fail a tight fit. The score is the number of RANSAC
matches that fit within a fraction of a pixel, weighted by their share of the
loosely consistent ones, the better of the image and its mirror (a flipped copy).
A camera that stays put while the subject moves (a shelf shot, then the product
turned in the hand) fits tightly too, on the background; so the fitted transform
is then checked on the pixels themselves: a copy agrees over nearly all of the
overlap once one tone curve is fitted (``agreement``; an overlay covers a little),
another shot not where the subject moved, and a pair agreeing over less than
AGREEMENT of it scores 0. Unlike a cosine score this share means the same for every
model, so it is a constant; the score threshold is calibrated per collection.
Both sides of a pair are compared as the gallery stores them, as thumbnails
(``as_stored``): a gallery image's is read back, a query's is made the same way, so
calibration, upload, search and the duplicates pass all verify the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps

from app.gallery import imaging
from app.gallery.keys import thumb_name
from app.gallery.storage import ImageStore

WORK_SIZE = 384  # both images are scaled to fit this square (up or down) before detection
MAX_FEATURES = 500  # SIFT keypoints kept per image, strongest first
RATIO = 0.8  # Lowe's ratio test on the two nearest descriptors
LOOSE = 4.0  # RANSAC inlier distance at WORK_SIZE, to find the transform
TIGHT = 0.5  # a verified match lands within this many pixels of the coarser image
SCALES = (0.2, 5.0)  # plausible size ratios of a copy at WORK_SIZE; others are degenerate fits
MIN_MATCHES = 4  # below this no transform is fitted (score 0)
MIN_SCORE = 20.0  # a fit weaker than this is not trusted to align the pixels (score 0)
BLOCK = 16  # working pixels per side of the blocks compared in ``agreement``
AGREE = 0.25  # a block agrees when its mean residual is below this share of the std
AGREEMENT = 0.6  # share of the overlap's blocks a copy's pixels agree on, at least


@dataclass(frozen=True)
class Features:
    """Keypoint positions (n x 2, at WORK_SIZE), their SIFT descriptors (n x 128),
    the working scale (working pixels per pixel of the image) and the grey working
    image itself, for the pixel check."""

    points: np.ndarray
    descriptors: np.ndarray
    scale: float
    image: np.ndarray

    def __len__(self) -> int:
        return len(self.points)


@dataclass(frozen=True)
class QueryFeatures:
    """A query's features, as it is and mirrored, so a flipped copy verifies too."""

    plain: Features
    mirrored: Features


def features(image: Image.Image) -> Features:
    """SIFT features of ``image`` scaled to fit WORK_SIZE (a fixed working size, so
    that every pair is matched at the same resolution whatever the stored size)."""
    gray, scale = _working(image)
    points, descriptors = cv2.SIFT_create(nfeatures=MAX_FEATURES).detectAndCompute(gray, None)
    if descriptors is None or not points:
        return Features(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32), scale, gray)
    return Features(np.asarray([p.pt for p in points], np.float32), descriptors, scale, gray)


def query_features(image: Image.Image) -> QueryFeatures:
    """Features of a query given as stored (``as_stored``), and of its mirror."""
    return QueryFeatures(features(image), features(ImageOps.mirror(image)))


def as_stored(image: Image.Image) -> Image.Image:
    """The image as the gallery's thumbnail of it reads back."""
    return imaging.decode(imaging.thumbnail(image)).image


def _working(image: Image.Image) -> tuple[np.ndarray, float]:
    gray = image.convert("L")
    scale = WORK_SIZE / max(gray.size)
    size = (max(1, round(gray.width * scale)), max(1, round(gray.height * scale)))
    resample = Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.LANCZOS
    return np.asarray(gray.resize(size, resample)), scale


def _matches(a: Features, b: Features) -> tuple[np.ndarray, np.ndarray]:
    """Ratio-test matches, one per keypoint of ``b`` (the closest): without that, one
    bland keypoint matched by many fits a degenerate transform."""
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(a.descriptors, b.descriptors, k=2)
    best: dict[int, cv2.DMatch] = {}
    for pair in pairs:
        if len(pair) == 2 and pair[0].distance < RATIO * pair[1].distance:
            m = pair[0]
            if m.trainIdx not in best or m.distance < best[m.trainIdx].distance:
                best[m.trainIdx] = m
    found = list(best.values())
    return a.points[[m.queryIdx for m in found]], b.points[[m.trainIdx for m in found]]


@dataclass(frozen=True)
class Fit:
    """A similarity transform from ``a``'s working pixels to ``b``'s and its support."""

    matrix: np.ndarray  # 2 x 3
    tight: int  # matches within TIGHT pixels of the coarser image
    loose: int  # matches within LOOSE working pixels


def fit(a: Features, b: Features) -> Fit | None:
    """The similarity transform most matches between ``a`` and ``b`` agree on (RANSAC,
    then refined on its inliers), with how many fit it tightly (all of a copy's, few
    of another shot's) and loosely; None without a plausible one."""
    if len(a) < MIN_MATCHES or len(b) < MIN_MATCHES:
        return None
    src, dst = _matches(a, b)
    if len(src) < MIN_MATCHES:
        return None
    found, mask = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=LOOSE, maxIters=2000
    )
    if found is None or mask.sum() < MIN_MATCHES:
        return None
    kept = mask.ravel().astype(bool)
    refit, _ = cv2.estimateAffinePartial2D(src[kept], dst[kept], method=cv2.LMEDS)
    found = refit if refit is not None else found
    scale = float(np.sqrt(abs(np.linalg.det(found[:, :2]))))  # b's working px per a's
    if not SCALES[0] <= scale <= SCALES[1]:
        return None
    residual = np.linalg.norm(src @ found[:, :2].T + found[:, 2] - dst, axis=1)
    pixel = max(b.scale, scale * a.scale)  # one pixel of the coarser image, in b's working px
    tight = int(np.count_nonzero(residual < TIGHT * pixel))
    return Fit(found, tight, int(np.count_nonzero(residual < LOOSE)))


def agreement(a: Features, b: Features, matrix: np.ndarray) -> float:
    """The share of the overlap whose pixels agree once ``a`` is mapped onto ``b``.

    ``a``'s grey image is warped by ``matrix``; one quadratic tone curve fitted over
    the overlap absorbs brightness, contrast and colour changes; a BLOCK-sized block
    agrees when its mean residual is under AGREE times the overlap's spread. A copy
    agrees nearly everywhere (a text overlay is a few blocks); where a subject moved
    in front of a still background, its blocks do not."""
    h, w = b.image.shape
    warped = cv2.warpAffine(a.image.astype(np.float32), matrix, (w, h), flags=cv2.INTER_LINEAR)
    ones = np.ones(a.image.shape, np.float32)
    valid = cv2.warpAffine(ones, matrix, (w, h), flags=cv2.INTER_LINEAR) > 0.999
    target = b.image.astype(np.float32)
    x, y = warped[valid] / 255.0, target[valid]
    if len(x) < BLOCK * BLOCK:
        return 0.0
    terms = np.stack([np.ones_like(x), x, x * x], axis=1)
    coef, *_ = np.linalg.lstsq(terms, y, rcond=None)
    u = warped / 255.0
    residual = np.abs(target - (coef[0] + coef[1] * u + coef[2] * u * u)) * valid
    rows, cols = h // BLOCK, w // BLOCK
    if not rows or not cols:
        return 0.0
    cut = (slice(0, rows * BLOCK), slice(0, cols * BLOCK))
    sums = residual[cut].reshape(rows, BLOCK, cols, BLOCK).sum(axis=(1, 3))
    counts = valid[cut].reshape(rows, BLOCK, cols, BLOCK).sum(axis=(1, 3))
    full = counts >= 0.75 * BLOCK * BLOCK  # blocks (mostly) inside the overlap
    if not full.any():
        return 0.0
    spread = float(y.std()) + 1e-6
    return float(np.mean(sums[full] / counts[full] < AGREE * spread))


def pair_score(a: Features, b: Features) -> float:
    """Tight inliers times their share of the loose ones (another shot of a scene fits
    loosely with many matches, parallax; a copy fits tightly with nearly all); 0 when
    the fit's pixels disagree over too much of the overlap (a subject moved before a
    still camera) or the fit is too weak to compare pixels by."""
    found = fit(a, b)
    if found is None or not found.loose:
        return 0.0
    score = found.tight * found.tight / found.loose
    if score < MIN_SCORE or agreement(a, b, found.matrix) < AGREEMENT:
        return 0.0
    return score


def verified_score(query: QueryFeatures, candidate: Features) -> float:
    """The verification score of a pair: the query's or its mirror's, the better."""
    return max(pair_score(query.plain, candidate), pair_score(query.mirrored, candidate))


def thumbnail_image(images: ImageStore, key: str) -> Image.Image:
    """A gallery image's stored thumbnail: what verification compares with (small, read fast)."""
    return imaging.decode(images.get(thumb_name(key))).image


def gallery_features(images: ImageStore, key: str) -> Features:
    return features(thumbnail_image(images, key))
