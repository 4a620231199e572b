"""One ``Serving`` per gallery in this process, on one Milvus connection.

Each gallery follows its own alias with its own model (app/serving.py, unchanged);
they share the Milvus client and the encoder pool, so two galleries with the same
model load it once. Built lazily per gallery; ``Lazy.reset`` of the whole object
(a Milvus outage) reconnects them all together.
"""

from __future__ import annotations

import threading

from app.galleries.registry import Gallery, GalleryRegistry
from app.model.pool import EncoderPool
from app.serving import Serving
from app.vectors.store import VectorStore


class Servings:
    """The galleries' Serving objects by name, and the registry, over one connection."""

    def __init__(
        self,
        base: VectorStore,
        registry: GalleryRegistry,
        *,
        encoders: EncoderPool,
        interval: float,
    ) -> None:
        self.base = base  # the default gallery's store; its client is everyone's
        self.registry = registry
        self.encoders = encoders
        self.interval = interval
        self._by_name: dict[str, Serving] = {}
        self._lock = threading.Lock()

    def get(self, gallery: Gallery) -> Serving:
        """``gallery``'s Serving, made on first use (again if its model setting changed)."""
        with self._lock:
            serving = self._by_name.get(gallery.name)
            if (
                serving is None
                or serving.configured != gallery.model
                or serving.store.alias != gallery.alias
            ):
                serving = Serving(
                    self.store_for(gallery.alias),
                    encoders=self.encoders,
                    configured=gallery.model,
                    interval=self.interval,
                )
                self._by_name[gallery.name] = serving
            return serving

    def store_for(self, alias: str) -> VectorStore:
        """A VectorStore for ``alias`` on the shared connection."""
        base = self.base
        return VectorStore(
            base.client, alias, params=base.params, lite=base.lite, timeout=base.timeout
        )

    def forget(self, name: str) -> None:
        """Drop a deleted gallery's Serving (its collections are gone)."""
        with self._lock:
            self._by_name.pop(name, None)

    def close(self) -> None:
        self.base.client.close()
