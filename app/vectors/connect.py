"""Connecting to Milvus: a server's URI, or the local Lite server of a data folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flask import Flask

from app.exceptions import VectorStoreUnavailable
from app.vectors.records import IndexParams
from app.vectors.store import VectorStore

CONNECT_ATTEMPTS = 3
LITE_GRPC_OPTIONS = {
    "grpc.keepalive_permit_without_calls": 0,
    "grpc.keepalive_time_ms": 300_000,
}
SERVER_SCHEMES = ("http://", "https://", "tcp://", "grpc://")


def is_server_uri(uri: str) -> bool:
    """True for a Milvus server's address, False for a local data folder."""
    return uri.startswith(SERVER_SCHEMES)


def local_data_dir(app: Flask) -> Path | None:
    """The embedded default's data folder, or None when LOOKALIKE_MILVUS_URI is a server."""
    uri = str(app.config["MILVUS_URI"] or "")
    if is_server_uri(uri):
        return None
    path = Path(uri or "milvus.db")
    return path if path.is_absolute() else Path(app.instance_path) / path


def milvus_uri(app: Flask) -> str:
    """The URI to connect to: a server's, or the shared Lite server of a local path."""
    from app.vectors.lite_server import ensure_server

    data_dir = local_data_dir(app)
    return str(app.config["MILVUS_URI"]) if data_dir is None else ensure_server(data_dir).uri


def connect_milvus(app: Flask) -> VectorStore:
    """A VectorStore on a fresh client; not yet checked against the encoder."""
    return connect_uri(app, milvus_uri(app), alias=str(app.config["COLLECTION"]),
                       token=str(app.config["MILVUS_TOKEN"] or ""))


def connect_uri(app: Flask, uri: str, *, alias: str, token: str = "") -> VectorStore:
    """A VectorStore for ``alias`` on the Milvus at ``uri``, with the app's index settings."""
    from pymilvus import MilvusException

    cfg = app.config
    timeout = float(cfg["MILVUS_TIMEOUT"])
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
    return VectorStore(client, alias, params=params, lite=version.startswith("milvus_lite"),
                       timeout=timeout)


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
