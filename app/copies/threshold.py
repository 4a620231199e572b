"""The copy threshold of a collection: stored in its properties, read with a short cache.

A cosine score means "the same picture" only relative to the model that made the
vectors, so the threshold belongs to the physical collection (which records its
model, app/vectors/lifecycle.py): a reindex makes a new collection and calibrates
it again. Without a calibration a conservative default applies, flagged as such so
the pages can say so.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, fields

from app.vectors.calls import milvus_call
from app.vectors.store import VectorStore

COPY_PROPERTY = "lookalike.copies"
# Used until a collection is calibrated: high, so that an uncalibrated gallery rather
# misses copies than calls merely similar photos copies.
DEFAULT_THRESHOLD = 0.95
TARGET_PRECISION = 0.99


@dataclass(frozen=True)
class Calibration:
    """A collection's copy threshold and what calibration measured at it."""

    threshold: float
    calibrated: bool = False  # False: DEFAULT_THRESHOLD, nothing measured
    precision: float | None = None  # at the threshold, on the calibration sample
    recall: float | None = None
    originals: int = 0  # gallery images sampled
    copies: int = 0  # synthetic copy pairs scored
    negatives: int = 0  # distinct gallery pairs scored (nearest neighbours)
    suspected: int = 0  # neighbour pairs left out as likely real copies (calibrate.py)
    model: str = ""
    date: str = ""
    # Geometric verification (decision.py), None in calibrations made before it: pairs
    # from ``candidate`` up are verified, a verified score from ``verified`` is a copy.
    candidate: float | None = None
    verified: float | None = None
    verified_precision: float | None = None  # of that rule, on the calibration sample
    verified_recall: float | None = None

    def describe(self) -> str:
        """One line for `index status` and the admin overview."""
        if not self.calibrated:
            return f"{self.threshold:.4f} default (not calibrated)"
        per_image = self.copies // max(1, self.originals)
        verified = (
            f"; verified from {self.candidate:.4f} at score {self.verified:.1f}: precision "
            f"{self.verified_precision:.3f}, recall {self.verified_recall:.3f}"
            if self.candidate is not None and self.verified is not None
            else ""
        )
        return (
            f"{self.threshold:.4f} (precision {self.precision:.3f}, recall "
            f"{self.recall:.3f} on {self.originals} images x {per_image} copies, "
            f"{self.negatives} distinct pairs{verified}; {self.model}, {self.date})"
        )


def default_calibration() -> Calibration:
    return Calibration(threshold=DEFAULT_THRESHOLD)


@milvus_call("reading the copy threshold")
def read_calibration(store: VectorStore, collection: str | None = None) -> Calibration:
    """The collection's stored calibration, or the default when it has none."""
    described = store.client.describe_collection(collection or store.alias, timeout=store.timeout)
    text = (described.get("properties") or {}).get(COPY_PROPERTY, "")
    try:
        data = json.loads(text) if text else None
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("threshold"), (int, float)):
        return default_calibration()
    known = {f.name for f in fields(Calibration)}
    return Calibration(**{k: v for k, v in data.items() if k in known})


@milvus_call("storing the copy threshold")
def write_calibration(
    store: VectorStore, calibration: Calibration, collection: str | None = None
) -> None:
    store.client.alter_collection_properties(
        collection or store.alias,
        properties={COPY_PROPERTY: json.dumps(asdict(calibration))},
        timeout=store.maintenance_timeout,
    )


class ThresholdCache:
    """Calibrations by physical collection, kept ``ttl`` seconds: a search should not
    describe the collection each time, and a new calibration shows within ``ttl``."""

    def __init__(self, ttl: float = 10.0) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Calibration]] = {}

    def get(self, store: VectorStore, collection: str) -> Calibration:
        with self._lock:
            cached = self._entries.get(collection)
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        calibration = read_calibration(store, collection)
        with self._lock:
            self._entries[collection] = (time.monotonic(), calibration)
        return calibration

    def forget(self) -> None:
        with self._lock:
            self._entries.clear()


def current_calibration() -> Calibration:
    """The calibration of the request's serving collection (in an app context)."""
    from flask import current_app

    from app.extensions import snapshot

    cache = current_app.extensions.setdefault("lookalike.copy_thresholds", ThresholdCache())
    snap = snapshot()
    return cache.get(snap.vectors, snap.collection)


def copy_threshold() -> float:
    """The score from which a search result is marked as a copy of the query."""
    return current_calibration().threshold


def forget_cached() -> None:
    """Drop this process's cached calibrations (after calibrating)."""
    from flask import current_app, has_app_context

    if has_app_context() and "lookalike.copy_thresholds" in current_app.extensions:
        current_app.extensions["lookalike.copy_thresholds"].forget()
