"""Which collection serves this process's searches, and the model that built it.

A query must be embedded by the model of the collection it searches, and after a
reindex that may not be ``LOOKALIKE_MODEL``. So searches are pinned to the
physical collection the alias pointed to, with the encoder whose stamp matches it;
the alias is looked at again every ``ALIAS_CHECK_SECONDS``, and after a switch one
thread loads the new model while the others keep searching the previous
collection (docs/architecture.md, "The Serving snapshot").
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from app.exceptions import CollectionMismatch, ModelLoadError
from app.model.encoder import Encoder
from app.model.pool import EncoderPool
from app.vectors.records import ModelStamp
from app.vectors.store import VectorStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """A consistent pair for one request: a collection and the encoder of its vectors."""

    collection: str
    stamp: ModelStamp | None
    encoder: Encoder
    vectors: VectorStore  # pinned to ``collection``


def stamp_of(encoder: Encoder) -> ModelStamp:
    return ModelStamp(name=encoder.name, fingerprint=encoder.fingerprint, dim=encoder.dim)


class Serving:
    """Follows the serving alias and keeps the matching encoder, per process."""

    def __init__(
        self, store: VectorStore, *, encoders: EncoderPool, configured: str, interval: float = 2.0
    ) -> None:
        self.store = store  # reached through the alias: for stats and admin pages
        self.encoders = encoders
        self.configured = configured
        self.interval = interval
        self._current: Snapshot | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def snapshot(self, *, fresh: bool = False) -> Snapshot:
        """The current pair, looking at the alias again if ``interval`` has passed.

        ``fresh`` always looks (gallery writers use it, holding the gallery lock,
        so they write into the collection that serves from now on).
        """
        current = self._current
        if current is not None and not fresh and not self._due():
            return current
        if current is not None and not fresh:
            if not self._lock.acquire(blocking=False):
                return current  # another thread is looking; keep serving meanwhile
        else:
            self._lock.acquire()
        try:
            if fresh or self._current is None or self._due():
                self._current = self._follow(self._current)
                self._checked = time.monotonic()
            return self._current
        finally:
            self._lock.release()

    def _due(self) -> bool:
        return time.monotonic() - self._checked >= self.interval

    def _follow(self, current: Snapshot | None) -> Snapshot:
        target = self.store.resolve()
        if target is None:  # an empty gallery: create the first collection
            encoder = self.encoders.get(self.configured)
            target = self.store.ensure(stamp_of(encoder))
            return self._pin(target, self.store.stamp_of(target), encoder)
        if current is not None and current.collection == target:
            return current
        stamp = self.store.stamp_of(target)
        encoder = self._encoder_for(target, stamp)
        if current is not None:
            log.info("search now uses %s (model %s)", target, encoder.name)
        self.encoders.keep({encoder.name}, owner=self.store.alias)
        return self._pin(target, stamp, encoder)

    def _encoder_for(self, collection: str, stamp: ModelStamp | None) -> Encoder:
        if stamp is None:  # made before stamps existed: only the dimension can be checked
            encoder = self.encoders.get(self.configured)
        else:
            try:
                encoder = self.encoders.get(stamp.name)
            except ModelLoadError as exc:
                raise CollectionMismatch(
                    f"The search index {collection!r} was built with the model {stamp.name!r}, "
                    f"which cannot be loaded here ({exc.message}). Reindex the gallery with the "
                    f"configured model {self.configured!r} (admin page or `flask --app wsgi "
                    "index rebuild`), or make that model available again."
                ) from exc
        self.store.check(stamp_of(encoder), collection)
        return encoder

    def _pin(self, collection: str, stamp: ModelStamp | None, encoder: Encoder) -> Snapshot:
        pinned = VectorStore(self.store.client, collection, params=self.store.params,
                             lite=self.store.lite, timeout=self.store.timeout)
        return Snapshot(collection, stamp, encoder, pinned)
