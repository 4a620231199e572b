"""Connecting to Milvus: a server's URI, or the local server of the instance folder.

The embedded default (``LOOKALIKE_MILVUS_URI`` empty) is a Milvus standalone
server under ``instance/milvus`` (app.vectors.standalone). An instance folder
made by the previous default, Milvus Lite in ``instance/milvus.db``, keeps being
served by Lite, with a warning, until ``flask --app wsgi index migrate --to
local`` has moved its gallery; so does a machine where the standalone server
cannot run (not installed, or no user namespaces), with a warning that says why.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask

from app.exceptions import VectorStoreUnavailable
from app.vectors.records import IndexParams
from app.vectors.store import VectorStore

CONNECT_ATTEMPTS = 3
# pymilvus pings every 10 s even on idle channels; Milvus Lite (gRPC's defaults)
# answers with GOAWAY "too_many_pings" and drops the connection. No pings without
# calls and none oftener than gRPC allows, on every server alike; and a subchannel
# of the client's own, since gRPC otherwise reuses one that another client's
# channel (same address and options) may have had dropped that way.
GRPC_OPTIONS = {
    "grpc.keepalive_permit_without_calls": 0,
    "grpc.keepalive_time_ms": 300_000,
    "grpc.use_local_subchannel_pool": 1,
}
SERVER_SCHEMES = ("http://", "https://", "tcp://", "grpc://")


LITE_DIR = "milvus.db"  # the previous embedded default's database, under instance/
STANDALONE_DIR = "milvus"  # the embedded default's data folder, under instance/
MIGRATED_SUFFIX = ".migrated"  # beside a Lite database whose gallery was moved


@dataclass(frozen=True)
class LocalMilvus:
    """Which local Milvus serves an instance folder, and why if not the standalone one."""

    kind: str  # "standalone" or "lite"
    data_dir: Path
    executable: Path | None = None  # milvus-server, for "standalone"
    warning: str = ""


def is_server_uri(uri: str) -> bool:
    """True for a Milvus server's address, False for a local data folder."""
    return uri.startswith(SERVER_SCHEMES)


def local_milvus(app: Flask) -> LocalMilvus | None:
    """The local Milvus for this app, or None when LOOKALIKE_MILVUS_URI is a server."""
    from app.vectors import standalone

    uri = str(app.config["MILVUS_URI"] or "")
    if is_server_uri(uri):
        return None
    instance = Path(app.instance_path)
    if uri:  # a path: Milvus Lite there, as asked
        return LocalMilvus("lite", Path(uri) if Path(uri).is_absolute() else instance / uri)
    lite = instance / LITE_DIR
    if lite.exists() and not migrated_marker(lite).exists():
        return LocalMilvus("lite", lite, warning=(
            f"The gallery is in Milvus Lite ({lite}), the previous embedded default, whose "
            "search time grows with the gallery. Move it to the local Milvus server, "
            "vectors and all: flask --app wsgi index migrate --to local"))
    data_dir = instance / STANDALONE_DIR
    executable = standalone.find_executable(str(app.config.get("MILVUS_SERVER") or ""))
    if executable is None:
        return LocalMilvus("lite", lite, warning=(
            "The local Milvus server is not installed, so Milvus Lite serves the gallery; its "
            "search time grows with the gallery. Install the server with `make install`."))
    if standalone.running_server(data_dir) is None and not standalone.can_isolate():
        return LocalMilvus("lite", lite, warning=(
            "This machine does not allow user namespaces, which keep the local Milvus server "
            "on loopback, so Milvus Lite serves the gallery; its search time grows with the "
            "gallery. Set LOOKALIKE_MILVUS_URI to a Milvus server for large galleries."))
    return LocalMilvus("standalone", data_dir, executable)


def migrated_marker(lite_dir: Path) -> Path:
    return lite_dir.with_name(lite_dir.name + MIGRATED_SUFFIX)


def local_data_dir(app: Flask) -> Path | None:
    """The local Milvus' data folder, or None when LOOKALIKE_MILVUS_URI is a server."""
    local = local_milvus(app)
    return None if local is None else local.data_dir


def milvus_uri(app: Flask) -> str:
    """The URI to connect to: a server's, or the local server of the instance folder."""
    local = local_milvus(app)
    if local is None:
        return str(app.config["MILVUS_URI"])
    if local.warning:
        app.logger.warning(local.warning)
    return local_uri(local)


def local_uri(local: LocalMilvus) -> str:
    """The URI of ``local``'s server, started if it is not running."""
    from app.vectors import lite_server, standalone

    if local.kind == "lite":
        return lite_server.ensure_server(local.data_dir).uri
    assert local.executable is not None
    return standalone.ensure_server(local.data_dir, local.executable).uri


def connect_milvus(app: Flask, *, alias: str | None = None) -> VectorStore:
    """A VectorStore on a fresh client (for ``alias``, default the default gallery's);
    not yet checked against the encoder."""
    return connect_uri(app, milvus_uri(app), alias=alias or str(app.config["COLLECTION"]),
                       token=str(app.config["MILVUS_TOKEN"] or ""))


def connect_uri(app: Flask, uri: str, *, alias: str, token: str = "") -> VectorStore:
    """A VectorStore for ``alias`` on the Milvus at ``uri``, with the app's index settings."""
    from pymilvus import MilvusException

    cfg = app.config
    timeout = float(cfg["MILVUS_TIMEOUT"])
    for attempt in range(CONNECT_ATTEMPTS):
        try:
            client, version = open_client(uri, token, timeout)
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


def open_client(uri: str, token: str = "", timeout: float = 10.0) -> tuple[Any, str]:
    """A client of its own (not pymilvus' per-address shared one) and the server version.

    Also for the benchmarks: clients sharing one connection fail together when one
    of them closes it, or when Milvus Lite drops it for pinging too often.
    """
    from pymilvus import MilvusClient

    # dedicated: pymilvus otherwise shares one connection among all clients of a
    # process with the same address, so one broken (or closed) connection would
    # fail them all at once, and our gRPC options would not apply.
    client = MilvusClient(uri, token=token, timeout=timeout, dedicated=True,
                          grpc_options=GRPC_OPTIONS)
    version = str(client.get_server_version(timeout=timeout))
    return client, version


def standalone_uri(app: Flask) -> str:
    """The local Milvus server of this instance folder (started if needed), as a target
    for ``index migrate --to local``."""
    from app.vectors import standalone

    executable = standalone.find_executable(str(app.config.get("MILVUS_SERVER") or ""))
    if executable is None:
        raise VectorStoreUnavailable(
            "The local Milvus server is not installed: run `make install` (it installs the "
            "PyPI package milvus into .venv-milvus), then this command again.")
    data_dir = Path(app.instance_path) / STANDALONE_DIR
    if standalone.running_server(data_dir) is None and not standalone.can_isolate():
        raise VectorStoreUnavailable(
            "This machine does not allow user namespaces, which keep the local Milvus server "
            "on loopback. Migrate to a Milvus server of your own with --to URI instead.")
    return standalone.ensure_server(data_dir, executable).uri


def retire_lite(app: Flask, note: dict[str, object]) -> bool:
    """After its gallery moved to the local server, stop serving the previous default's
    Lite database (kept on disk, untouched). True if it was the one in use."""
    from app.vectors import lite_server

    local = local_milvus(app)
    lite = Path(app.instance_path) / LITE_DIR
    if local is None or local.kind != "lite" or local.data_dir != lite or app.config["MILVUS_URI"]:
        return False
    migrated_marker(lite).write_text(json.dumps(note, indent=2) + "\n")
    lite_server.stop_server(lite)
    return True
