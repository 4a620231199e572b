"""The one place a pair of images is called a copy: at upload, in search marks, in the
duplicates pass.

With a verified calibration the embedding only proposes: a pair scoring at or above
the low ``candidate`` threshold is checked by geometric verification (verify.py)
and is a copy when its verified score reaches ``verified``. Without one (an older
calibration, the default) the embedding threshold alone decides, as it always did.
A gallery image whose thumbnail cannot be read falls back to that threshold too.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from app.copies import verify
from app.copies.threshold import Calibration
from app.exceptions import InvalidImage, NotFound, StorageUnavailable
from app.gallery.storage import ImageStore

log = logging.getLogger(__name__)

FEATURE_CACHE = 512  # gallery images whose features a judge keeps
JUDGES_KEPT = 16  # rules (galleries, calibrations) a process keeps a judge for


@dataclass(frozen=True)
class CopyRule:
    """How a collection decides "copy": its embedding threshold, and the verified rule
    when its calibration measured one."""

    threshold: float
    candidate: float | None = None
    verified: float | None = None

    @classmethod
    def of(cls, calibration: Calibration) -> CopyRule:
        return cls(calibration.threshold, calibration.candidate, calibration.verified)

    @property
    def verifies(self) -> bool:
        return self.candidate is not None and self.verified is not None

    @property
    def floor(self) -> float:
        """The lowest embedding score that can be a copy: search only above it."""
        if self.candidate is None or self.verified is None:
            return self.threshold
        return min(self.candidate, self.threshold)

    def decide(self, score: float, verified: Callable[[], float | None]) -> bool:
        """Copy or not for a pair with embedding ``score``; ``verified`` is called only
        for a candidate, and None from it (nothing to verify with) means the
        embedding threshold decides."""
        if self.candidate is None or self.verified is None:
            return score >= self.threshold
        if score < self.floor:
            return False
        found = verified()
        return score >= self.threshold if found is None else found >= self.verified


class CopyJudge:
    """A rule with the gallery's thumbnails to verify against, features cached."""

    def __init__(self, rule: CopyRule, images: ImageStore | None) -> None:
        self.rule = rule
        self.images = images
        self._cache: OrderedDict[str, verify.Features | None] = OrderedDict()
        self._lock = threading.Lock()  # one judge serves a worker's request threads

    def gallery(self, key: str) -> verify.Features | None:
        """A gallery image's features, None when its thumbnail cannot be read."""
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        found: verify.Features | None = None
        if self.images is not None:
            try:
                found = verify.gallery_features(self.images, key)
            except (NotFound, InvalidImage, StorageUnavailable) as exc:
                log.warning("copy verification cannot read %s: %s", key, exc.message)
        with self._lock:
            self._cache[key] = found
            if len(self._cache) > FEATURE_CACHE:
                self._cache.popitem(last=False)
        return found

    def query(self, image: Image.Image | None = None, key: str = "") -> Query:
        """A query to judge candidates against: an image in hand or a gallery key."""
        return Query(self, image, key)


class Query:
    """One query image against candidate gallery images; its features made on first need."""

    def __init__(self, judge: CopyJudge, image: Image.Image | None, key: str) -> None:
        self.judge, self.image, self.key = judge, image, key
        self._made = False
        self._features: verify.QueryFeatures | None = None

    def _query_features(self) -> verify.QueryFeatures | None:
        if not self._made:
            self._made = True
            image = verify.as_stored(self.image) if self.image is not None else None
            if image is None and self.key and self.judge.images is not None:
                try:
                    image = verify.thumbnail_image(self.judge.images, self.key)
                except (NotFound, InvalidImage, StorageUnavailable):
                    image = None
            self._features = verify.query_features(image) if image is not None else None
        return self._features

    def is_copy(self, key: str, score: float, *, verify_pair: bool = True) -> bool:
        """Whether the gallery image ``key``, at embedding ``score``, is a copy of the query;
        with ``verify_pair=False`` the embedding threshold alone decides."""

        def verified() -> float | None:
            if not verify_pair:
                return None
            query, other = self._query_features(), self.judge.gallery(key)
            if query is None or other is None:
                return None
            return verify.verified_score(query, other)

        return self.judge.rule.decide(score, verified)


def copy_judge() -> CopyJudge:
    """The serving collection's judge, with the gallery's images (in an app context).

    One judge per rule is kept for the process, so the features of gallery images it
    verified serve later requests too (keys are content hashes: they never go stale);
    a new calibration makes a new rule and so a fresh judge.
    """
    from flask import current_app

    from app.copies.threshold import current_calibration
    from app.extensions import images

    rule = CopyRule.of(current_calibration())
    judges: dict[CopyRule, CopyJudge] = current_app.extensions.setdefault(
        "lookalike.copy_judges", {})
    judge = judges.get(rule)
    if judge is None:
        if len(judges) >= JUDGES_KEPT:
            judges.clear()
        judge = judges.setdefault(rule, CopyJudge(rule, images()))
    return judge
