"""Geometric verification: are two images the same pixels, up to a crop, a resize, a flip?

A global embedding scores another shot of the same scene as high as a copy. Local
features tell them apart: a copy's matched keypoints all agree with ONE similarity
transform (crop, resize, small rotation), while two shots of a scene differ by
parallax and perspective and fail a tight fit. The score is the number of RANSAC
matches that fit within a fraction of a pixel, weighted by their share of the
loosely consistent ones, the better of the image and its mirror (a flipped copy).
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


@dataclass(frozen=True)
class Features:
    """Keypoint positions (n x 2, at WORK_SIZE), their SIFT descriptors (n x 128) and
    the working scale (working pixels per pixel of the image)."""

    points: np.ndarray
    descriptors: np.ndarray
    scale: float

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
        return Features(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32), scale)
    return Features(np.asarray([p.pt for p in points], np.float32), descriptors, scale)


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


def inliers(a: Features, b: Features) -> tuple[int, int]:
    """How many matches between ``a`` and ``b`` one similarity transform maps to within
    TIGHT pixels of the coarser image (all of a copy's, few of another shot's), and
    how many within LOOSE working pixels."""
    if len(a) < MIN_MATCHES or len(b) < MIN_MATCHES:
        return 0, 0
    src, dst = _matches(a, b)
    if len(src) < MIN_MATCHES:
        return 0, 0
    fit, mask = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=LOOSE, maxIters=2000
    )
    if fit is None or mask.sum() < MIN_MATCHES:
        return 0, 0
    kept = mask.ravel().astype(bool)
    refit, _ = cv2.estimateAffinePartial2D(src[kept], dst[kept], method=cv2.LMEDS)
    fit = refit if refit is not None else fit
    scale = float(np.sqrt(abs(np.linalg.det(fit[:, :2]))))  # b's working px per a's
    if not SCALES[0] <= scale <= SCALES[1]:
        return 0, 0
    residual = np.linalg.norm(src @ fit[:, :2].T + fit[:, 2] - dst, axis=1)
    pixel = max(b.scale, scale * a.scale)  # one pixel of the coarser image, in b's working px
    return int(np.count_nonzero(residual < TIGHT * pixel)), int(np.count_nonzero(residual < LOOSE))


def pair_score(a: Features, b: Features) -> float:
    """Tight inliers times their share of the loose ones: another shot of a scene fits
    loosely with many matches (parallax), a copy fits tightly with nearly all."""
    tight, loose = inliers(a, b)
    return tight * tight / loose if loose else 0.0


def verified_score(query: QueryFeatures, candidate: Features) -> float:
    """The verification score of a pair: the query's or its mirror's, the better."""
    return max(pair_score(query.plain, candidate), pair_score(query.mirrored, candidate))


def thumbnail_image(images: ImageStore, key: str) -> Image.Image:
    """A gallery image's stored thumbnail: what verification compares with (small, read fast)."""
    return imaging.decode(images.get(thumb_name(key))).image


def gallery_features(images: ImageStore, key: str) -> Features:
    return features(thumbnail_image(images, key))
