"""Where API keys live: a small Milvus collection every worker and host sees.

A key is ``lk_`` + 43 random URL-safe characters (``secrets.token_urlsafe(32)``:
256 bits). Only its SHA-256 is stored. A slow password hash (bcrypt, scrypt)
protects low-entropy secrets that can be guessed; a 256-bit random token cannot
be guessed, so one SHA-256 is as safe here and keeps the check to microseconds
on every request. Hashes are compared with ``hmac.compare_digest``.

The collection (``API_KEYS_COLLECTION``, default ``lookalike_api_keys``) has the
key's name as its primary key, the hash, the scope and epoch times; Milvus needs
a vector field in every collection, so it carries a constant two-dimensional one.
Reads are "Strong": a key made by the CLI or another worker is seen at once.
Each process caches what it read for ``API_KEY_CACHE_SECONDS``, so a revoked key
stops working everywhere within that bound, and writes ``last_used`` at most
every ``API_KEY_TOUCH_SECONDS`` per key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from flask import Flask
from pymilvus import DataType, MilvusClient, MilvusException

from app.exceptions import BadRequest, NotFound
from app.vectors.calls import milvus_call
from app.vectors.filters import string_literal

SCOPES = ("search", "manage")  # manage includes search
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
TOKEN_PREFIX = "lk_"
TOKEN_PATTERN = re.compile(r"lk_[A-Za-z0-9_-]{43}")
HASH_LENGTH = 64
_FIELDS = ["name", "hash", "scope", "created", "last_used", "revoked"]
_DUMMY = [0.0, 0.0]


@dataclass(frozen=True)
class ApiKey:
    """One key as the app knows it: never the key itself, only who and what it may do."""

    name: str
    scope: str
    created: float  # epoch seconds
    last_used: float = 0.0  # 0 = never
    revoked: float = 0.0  # 0 = active

    @property
    def active(self) -> bool:
        return not self.revoked

    def allows(self, scope: str) -> bool:
        return self.active and (self.scope == scope or self.scope == "manage")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise BadRequest(
            "A key name is 1 to 64 letters, digits, '_', '.' or '-', starting "
            "with a letter or digit."
        )
    return name


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise BadRequest(f"The scope is one of {', '.join(SCOPES)}.")
    return scope


class KeyStore:
    """API keys in one Milvus collection, with a short per-process cache."""

    def __init__(
        self,
        client: MilvusClient,
        collection: str,
        *,
        timeout: float = 10.0,
        cache_seconds: float = 5.0,
        touch_seconds: float = 60.0,
    ) -> None:
        self.client = client
        self.collection = collection
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self.touch_seconds = touch_seconds
        self._cache: dict[str, tuple[float, tuple[ApiKey, str] | None]] = {}
        self._touched: dict[str, float] = {}
        self._ready = False
        self._lock = threading.Lock()

    # -- writes ------------------------------------------------------------------------

    def create(self, name: str, scope: str) -> tuple[ApiKey, str]:
        """A new key and its token (shown once, never stored); BadRequest if the name is taken."""
        check_name(name)
        check_scope(scope)
        existing = self._row_by_name(name)
        if existing is not None and not existing[0].revoked:
            raise BadRequest(
                f"A key named {name!r} exists already. Revoke it first, or choose another name."
            )
        token = new_token()
        key = ApiKey(name=name, scope=scope, created=time.time())
        self._write(key, hash_token(token))
        return key, token

    def revoke(self, name: str) -> ApiKey:
        found = self._row_by_name(check_name(name))
        if found is None:
            raise NotFound(f"There is no API key named {name!r}.")
        key, digest = found
        if key.revoked:
            return key
        key = replace(key, revoked=time.time())
        self._write(key, digest)
        with self._lock:
            self._cache.pop(digest, None)
        return key

    def list(self) -> list[ApiKey]:
        """Every key, revoked ones too (they keep their name: its history is in the audit log)."""
        self._ensure()
        rows = self._query('name != ""')
        return sorted((self._key(r) for r in rows), key=lambda k: (bool(k.revoked), k.name))

    # -- checks --------------------------------------------------------------------------

    def authenticate(self, token: str) -> ApiKey | None:
        """The active key whose token this is, or None (unknown, malformed or revoked)."""
        if not isinstance(token, str) or not TOKEN_PATTERN.fullmatch(token):
            return None
        digest = hash_token(token)
        found = self._cached(digest)
        if found is None:
            return None
        key, stored = found
        if not hmac.compare_digest(stored, digest) or key.revoked:
            return None
        self._touch(key, stored)
        return key

    def _cached(self, digest: str) -> tuple[ApiKey, str] | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < self.cache_seconds:
            return hit[1]
        self._ensure()
        rows = self._query(f"hash == {string_literal(digest)}")
        found = (self._key(rows[0]), str(rows[0]["hash"])) if rows else None
        with self._lock:
            if len(self._cache) > 10_000:  # bounded: wrong tokens must not grow it forever
                self._cache.clear()
            self._cache[digest] = (now, found)
        return found

    def _touch(self, key: ApiKey, digest: str) -> None:
        """Record the use, at most every ``touch_seconds`` per key and process."""
        now = time.time()
        with self._lock:
            if now - self._touched.get(key.name, 0.0) < self.touch_seconds:
                return
            self._touched[key.name] = now
        self._write(replace(key, last_used=now), digest)

    # -- Milvus ---------------------------------------------------------------------------

    def _row_by_name(self, name: str) -> tuple[ApiKey, str] | None:
        self._ensure()
        rows = self._query(f"name == {string_literal(name)}")
        return (self._key(rows[0]), str(rows[0]["hash"])) if rows else None

    @milvus_call("reading API keys")
    def _query(self, expression: str) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in self.client.query(
                self.collection,
                filter=expression,
                output_fields=_FIELDS,
                consistency_level="Strong",
                timeout=self.timeout,
            )
        ]

    @milvus_call("writing an API key")
    def _write(self, key: ApiKey, digest: str) -> None:
        self._ensure()
        self.client.upsert(
            self.collection,
            [
                {
                    "name": key.name,
                    "hash": digest,
                    "scope": key.scope,
                    "created": key.created,
                    "last_used": key.last_used,
                    "revoked": key.revoked,
                    "vector": _DUMMY,
                }
            ],
            timeout=self.timeout,
        )

    @milvus_call("creating the API key collection")
    def _ensure(self) -> None:
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            if not self.client.has_collection(self.collection, timeout=self.timeout):
                self._create()
            self.client.load_collection(self.collection, timeout=max(self.timeout, 60.0))
            self._ready = True

    def _create(self) -> None:
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("name", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("hash", DataType.VARCHAR, max_length=HASH_LENGTH)
        schema.add_field("scope", DataType.VARCHAR, max_length=16)
        schema.add_field("created", DataType.DOUBLE)
        schema.add_field("last_used", DataType.DOUBLE)
        schema.add_field("revoked", DataType.DOUBLE)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=len(_DUMMY))
        index = self.client.prepare_index_params()
        index.add_index(field_name="vector", index_type="FLAT", metric_type="L2")
        try:
            self.client.create_collection(
                self.collection,
                schema=schema,
                index_params=index,
                consistency_level="Strong",
                timeout=max(self.timeout, 60.0),
            )
        except MilvusException:  # another process may have created it meanwhile
            if not self.client.has_collection(self.collection, timeout=self.timeout):
                raise

    @staticmethod
    def _key(row: dict[str, Any]) -> ApiKey:
        return ApiKey(
            name=str(row["name"]),
            scope=str(row["scope"]),
            created=float(row["created"]),
            last_used=float(row["last_used"] or 0.0),
            revoked=float(row["revoked"] or 0.0),
        )


def build_store(app: Flask) -> KeyStore:
    from app.vectors.connect import connect_milvus

    cfg = app.config
    return KeyStore(
        connect_milvus(app).client,
        str(cfg["API_KEYS_COLLECTION"]),
        timeout=float(cfg["MILVUS_TIMEOUT"]),
        cache_seconds=float(cfg["API_KEY_CACHE_SECONDS"]),
        touch_seconds=float(cfg["API_KEY_TOUCH_SECONDS"]),
    )
