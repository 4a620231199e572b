"""Heavy services, built lazily once per process and reached through app.extensions.

The model, the Milvus client and the S3 client are never built at import or in the
gunicorn master (a forked worker must not inherit a gRPC channel or torch threads).
``Lazy`` rebuilds in a new process and does not cache a failure, so a service that
was down is retried. ``encoder()`` and ``vectors()`` come from one per-request
snapshot of ``app.serving.Serving`` (docs/architecture.md, "The Serving snapshot").
Every gallery has its own Serving (app/galleries/servings.py); the helpers below
resolve to the current request's or command's gallery (app/galleries/current.py).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from flask import Flask, current_app, g

from app.galleries.registry import Gallery, GalleryRegistry, default_name
from app.galleries.servings import Servings
from app.gallery.storage import ImageStore, open_store
from app.model.encoder import Encoder
from app.model.pool import EncoderPool
from app.serving import Serving, Snapshot
from app.vectors.connect import connect_milvus
from app.vectors.labels import LabelCache
from app.vectors.store import VectorStore

T = TypeVar("T")


class Lazy(Generic[T]):
    """A value built on first use, once per process."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def get(self) -> T:
        if self._value is None or self._pid != os.getpid():
            with self._lock:
                if self._value is None or self._pid != os.getpid():
                    self._value = self._build()
                    self._pid = os.getpid()
        return self._value

    def peek(self) -> T | None:
        """The value if this process built it already, without building it."""
        return self._value if self._pid == os.getpid() else None

    def reset(self) -> None:
        with self._lock:
            self._value = None


def init_app(app: Flask) -> None:
    # The configured model (LOOKALIKE_MODEL): what a reindex encodes with.
    app.extensions["lookalike.encoder"] = Lazy(lambda: build_encoder(app))
    # Models by name, kept across Milvus reconnects (reset() of the Serving below).
    app.extensions["lookalike.encoders"] = Lazy(lambda: build_encoder_pool(app))
    # Every gallery's Serving (alias follower) and the registry; reset() reconnects.
    app.extensions["lookalike.serving"] = Lazy(lambda: build_servings(app))
    app.extensions["lookalike.images"] = Lazy(lambda: build_images(app))
    # Label counts by physical collection: a reindex misses the cache at once.
    app.extensions["lookalike.labels"] = LabelCache(ttl=app.config["LABELS_CACHE_SECONDS"])


def encoder() -> Encoder:
    """The encoder of the serving collection (the same for the whole request)."""
    return snapshot().encoder


def vectors() -> VectorStore:
    """The serving collection, pinned for the whole request to match ``encoder()``."""
    return snapshot().vectors


def servings() -> Servings:
    return current_app.extensions["lookalike.serving"].get()


def galleries() -> GalleryRegistry:
    return servings().registry


def gallery() -> Gallery:
    """The current gallery: the request's or command's, else the default one."""
    from app.galleries.current import current_name

    registry = galleries()
    return registry.get(current_name() or registry.default.name)


def serving() -> Serving:
    """The current gallery's Serving."""
    return servings().get(gallery())


def snapshot() -> Snapshot:
    """One collection + encoder pair per request (or CLI command) and gallery, taken on
    first use."""
    if "lookalike_snapshots" not in g:
        g.lookalike_snapshots = {}
    name = gallery().name
    if name not in g.lookalike_snapshots:
        g.lookalike_snapshots[name] = serving().snapshot()
    return g.lookalike_snapshots[name]


def images() -> ImageStore:
    return current_app.extensions["lookalike.images"].get()


def gallery_labels() -> dict[str, int]:
    """The serving collection's labels with their image counts, most images first."""
    snap = snapshot()
    return current_app.extensions["lookalike.labels"].get(snap.vectors, snap.collection)


def build_encoder(app: Flask, model: str | None = None) -> Encoder:
    cfg = app.config
    return Encoder.from_pretrained(
        model or str(cfg["MODEL"]),
        device=cfg["DEVICE"] or None,
        precision=str(cfg["PRECISION"]),
        compile=bool(cfg["COMPILE"]),
        threads=int(cfg["THREADS"]) or None,
        batch_size=int(cfg["BATCH_SIZE"]),
        backend=str(cfg["ENCODER_BACKEND"]),
        export_dir=export_dir(app),
    )


def export_dir(app: Flask) -> Path:
    """Where exported encoders (OpenVINO, ONNX) and auto's decisions are kept."""
    return Path(app.config["ENCODER_EXPORT_DIR"] or Path(app.instance_path) / "encoder-exports")


def build_encoder_pool(app: Flask) -> EncoderPool:
    configured = str(app.config["MODEL"])
    return EncoderPool(lambda name: app.extensions["lookalike.encoder"].get()
                       if name == configured else build_encoder(app, name))


def build_servings(app: Flask) -> Servings:
    base = connect_milvus(app)
    interval = float(app.config["ALIAS_CHECK_SECONDS"])
    name = default_name(base.alias)
    # The gallery of LOOKALIKE_COLLECTION, registered or not: a deployment made before
    # galleries existed is served as it was.
    default = Gallery(name=name, title=name.replace("-", " ").capitalize(),
                      model=str(app.config["MODEL"]), alias=base.alias, default=True)
    registry = GalleryRegistry(base.client, default=default, timeout=base.timeout,
                               ttl=interval)
    return Servings(base, registry, encoders=app.extensions["lookalike.encoders"].get(),
                    interval=interval)


def build_images(app: Flask) -> ImageStore:
    cfg = app.config
    return open_store(
        str(cfg["STORAGE"] or ""),
        instance_path=Path(app.instance_path),
        endpoint=cfg["S3_ENDPOINT"] or None,
        access_key=cfg["S3_ACCESS_KEY"] or None,
        secret_key=cfg["S3_SECRET_KEY"] or None,
        secure=bool(cfg["S3_SECURE"]),
        region=cfg["S3_REGION"] or None,
        timeout=float(cfg["STORAGE_TIMEOUT"]),
    )
