"""S3 clients for bucket sources: the ``LOOKALIKE_S3_*`` endpoint, or a named one.

``S3_ENDPOINTS`` names further servers (``{"archive": {"endpoint": "host:9000",
"access_key": ..., "secret_key": ..., "secure": false, "region": ""}}``) for
sources that live elsewhere than the image store; ``""`` is the default one.
Clients are built once per process and name, with the image store's short
timeouts (``connect_minio``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from minio import Minio

from app.exceptions import BadRequest
from app.gallery.storage import _split_endpoint, connect_minio

DEFAULT = ""
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


class Endpoints:
    """Named S3 endpoints and a client per name, made on first use."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._settings = _settings(config)
        self._timeout = float(config.get("STORAGE_TIMEOUT") or 5.0)
        self._clients: dict[str, Minio] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return sorted(self._settings)

    def check(self, name: str) -> str:
        if name not in self._settings:
            known = ", ".join(repr(n) for n in self.names() if n) or "none"
            raise BadRequest(
                f"There is no S3 endpoint named {name!r} (configured: {known}; "
                "set LOOKALIKE_S3_ENDPOINT or LOOKALIKE_S3_ENDPOINTS)."
            )
        return name

    def client(self, name: str = DEFAULT) -> Minio:
        with self._lock:
            if name not in self._clients:
                spec = self._settings[self.check(name)]
                host, secure = _split_endpoint(str(spec["endpoint"]), bool(spec.get("secure")))
                self._clients[name] = connect_minio(
                    host,
                    access_key=spec.get("access_key") or None,
                    secret_key=spec.get("secret_key") or None,
                    secure=secure,
                    region=spec.get("region") or None,
                    timeout=self._timeout,
                )
            return self._clients[name]


def _settings(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    named = config.get("S3_ENDPOINTS") or {}
    if not isinstance(named, Mapping):
        raise ValueError("LOOKALIKE_S3_ENDPOINTS must be a JSON object of named endpoints.")
    out: dict[str, dict[str, Any]] = {}
    if config.get("S3_ENDPOINT"):
        out[DEFAULT] = {
            "endpoint": config["S3_ENDPOINT"],
            "access_key": config.get("S3_ACCESS_KEY"),
            "secret_key": config.get("S3_SECRET_KEY"),
            "secure": config.get("S3_SECURE"),
            "region": config.get("S3_REGION"),
        }
    for name, spec in named.items():
        if (
            not name
            or not set(name) <= _NAME_CHARS
            or not isinstance(spec, Mapping)
            or not spec.get("endpoint")
        ):
            raise ValueError(
                f'LOOKALIKE_S3_ENDPOINTS: {name!r} needs a lowercase name and an "endpoint".'
            )
        out[name] = dict(spec)
    return out
