"""Heavy services, built lazily once per process and reached through app.extensions.

The model, the Milvus client and the S3 client are never built at import or in
the gunicorn master: a forked worker that inherited a gRPC channel or torch
threads would misbehave. ``Lazy`` rebuilds in a process whose pid differs from
the one that built it, and does not cache a failure, so a service that was down
is retried on the next request.

``encoder()`` and ``vectors()`` come from one per-request snapshot of
``app.jobs.serving.Serving``: the collection the serving alias points to and
the model that built it (which after a reindex may differ from
``LOOKALIKE_MODEL`` until workers notice the switch, within seconds).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from flask import Flask, current_app, g

from app.encoder import Encoder
from app.jobs.serving import EncoderPool, Serving, Snapshot
from app.storage import ImageStore, open_store
from app.vectors import IndexParams, ModelStamp, VectorStore

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


CONNECT_ATTEMPTS = 3
LITE_GRPC_OPTIONS = {
    "grpc.keepalive_permit_without_calls": 0,
    "grpc.keepalive_time_ms": 300_000,
}


def init_app(app: Flask) -> None:
    # The configured model (LOOKALIKE_MODEL): what a reindex encodes with.
    app.extensions["lookalike.encoder"] = Lazy(lambda: build_encoder(app))
    # Models by name, kept across Milvus reconnects (reset() of the Serving below).
    app.extensions["lookalike.encoders"] = Lazy(lambda: build_encoder_pool(app))
    # The Serving (alias follower); reset() reconnects to Milvus.
    app.extensions["lookalike.vectors"] = Lazy(lambda: build_serving(app))
    app.extensions["lookalike.images"] = Lazy(lambda: build_images(app))


def encoder() -> Encoder:
    """The encoder of the serving collection (the same for the whole request)."""
    return snapshot().encoder


def vectors() -> VectorStore:
    """The serving collection, pinned for the whole request to match ``encoder()``."""
    return snapshot().vectors


def serving() -> Serving:
    return current_app.extensions["lookalike.vectors"].get()


def snapshot() -> Snapshot:
    """One collection + encoder pair per request (or CLI command), taken on first use."""
    if "lookalike_snapshot" not in g:
        g.lookalike_snapshot = serving().snapshot()
    return g.lookalike_snapshot


def images() -> ImageStore:
    return current_app.extensions["lookalike.images"].get()


def build_encoder(app: Flask, model: str | None = None) -> Encoder:
    cfg = app.config
    return Encoder.from_pretrained(
        model or str(cfg["MODEL"]),
        device=cfg["DEVICE"] or None,
        bf16=cfg["BF16"],
        precision=None if cfg["BF16"] is not None else str(cfg["PRECISION"]),
        compile=bool(cfg["COMPILE"]),
        threads=int(cfg["THREADS"]) or None,
        batch_size=int(cfg["BATCH_SIZE"]),
    )


def model_stamp(enc: Encoder) -> ModelStamp:
    return ModelStamp(name=enc.name, fingerprint=enc.fingerprint, dim=enc.dim)


def milvus_uri(app: Flask) -> str:
    """The URI to connect to: a server's, or the shared Lite server of a local path."""
    from app.lite_server import ensure_server

    uri = str(app.config["MILVUS_URI"] or "")
    if uri.startswith(("http://", "https://", "tcp://", "grpc://")):
        return uri
    path = Path(uri or "milvus.db")
    if not path.is_absolute():
        path = Path(app.instance_path) / path
    return ensure_server(path).uri


def connect_milvus(app: Flask) -> VectorStore:
    """A VectorStore on a fresh client; not yet checked against the encoder."""
    from pymilvus import MilvusException

    from app.exceptions import VectorStoreUnavailable

    cfg = app.config
    uri = milvus_uri(app)
    timeout = float(cfg["MILVUS_TIMEOUT"])
    token = str(cfg["MILVUS_TOKEN"] or "")
    for attempt in range(CONNECT_ATTEMPTS):
        try:
            client, version = _connect(uri, token, timeout)
            break
        except MilvusException as exc:
            # A busy server (seen: Milvus Lite under load) now and then refuses a new
            # connection outright; a real outage still fails all attempts, ~0.6 s later.
            if attempt == CONNECT_ATTEMPTS - 1:
                raise VectorStoreUnavailable(
                    f"Milvus at {uri} is unreachable ({exc.message}). Check "
                    "LOOKALIKE_MILVUS_URI and that the server is running."
                ) from exc
            time.sleep(0.2 * (attempt + 1))
    params = IndexParams(
        m=int(cfg["HNSW_M"]), ef_construction=int(cfg["HNSW_EF_CONSTRUCTION"]),
        ef=int(cfg["SEARCH_EF"]),
    )
    return VectorStore(client, str(cfg["COLLECTION"]), params=params,
                       lite=version.startswith("milvus_lite"), timeout=timeout)


def _connect(uri: str, token: str, timeout: float) -> tuple[Any, str]:
    """A client of its own (not pymilvus' per-address shared one) and the server version."""
    from pymilvus import MilvusClient

    # dedicated: pymilvus otherwise shares one connection among all clients of a
    # process with the same address, so one broken (or closed) connection would
    # fail them all at once, and our gRPC options would not apply.
    client = MilvusClient(uri, token=token, timeout=timeout, dedicated=True)
    version = str(client.get_server_version(timeout=timeout))
    if version.startswith("milvus_lite"):
        # pymilvus pings every 10 s even on idle channels; the Lite server (gRPC's
        # defaults) answers that with GOAWAY "too_many_pings" and drops the
        # connection. No pings without calls, and none oftener than gRPC allows.
        client.close()
        client = MilvusClient(uri, token=token, timeout=timeout, dedicated=True,
                              grpc_options=LITE_GRPC_OPTIONS)
    return client, version


def build_encoder_pool(app: Flask) -> EncoderPool:
    configured = str(app.config["MODEL"])
    return EncoderPool(lambda name: app.extensions["lookalike.encoder"].get()
                       if name == configured else build_encoder(app, name))


def build_serving(app: Flask) -> Serving:
    return Serving(connect_milvus(app), encoders=app.extensions["lookalike.encoders"].get(),
                   configured=str(app.config["MODEL"]),
                   interval=float(app.config["ALIAS_CHECK_SECONDS"]))


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
