"""Every Milvus call goes through ``milvus_call``: outages become VectorStoreUnavailable.

A collection that Milvus Lite forgot to load after a restart is loaded again
once and the call retried; "not found" errors pass through for the caller.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import grpc
from pymilvus import MilvusException

from app.exceptions import VectorStoreUnavailable


def milvus_call(what: str) -> Callable:
    """Turn connection and server failures into VectorStoreUnavailable."""

    def decorate(func: Callable) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                try:
                    return func(*args, **kwargs)
                except MilvusException as exc:
                    store = args[0] if args and hasattr(args[0], "maintenance_timeout") else None
                    if store is None or not _not_loaded(exc):
                        raise
                    # Milvus Lite forgets which collections were loaded when its
                    # server restarts (a server remembers, but an operator may have
                    # released one): load it again, once, and retry.
                    target = _released_name(exc) or kwargs.get("collection") or store.alias
                    store.client.load_collection(target, timeout=store.maintenance_timeout)
                    return func(*args, **kwargs)
            except MilvusException as exc:
                if is_missing(exc):
                    raise
                raise VectorStoreUnavailable(
                    f"The search index is unavailable ({what} failed: {exc.message}). "
                    "Try again in a moment."
                ) from exc
            except grpc.RpcError as exc:
                # pymilvus re-raises some gRPC failures as they are (seen: a deadline
                # exceeded on a server still loading after a restart).
                code = exc.code() if hasattr(exc, "code") else None
                raise VectorStoreUnavailable(
                    f"The search index is unavailable ({what} failed: "
                    f"{getattr(code, 'name', 'gRPC error')}). Try again in a moment."
                ) from exc

        wrapper.__name__ = func.__name__
        wrapper.__doc__ = func.__doc__
        return wrapper

    return decorate


_RELEASED = re.compile(r"[Cc]ollection '([^']+)' is in state 'released'")


def _not_loaded(exc: MilvusException) -> bool:
    """Lite: "Collection 'x' is in state 'released'"; a server: "collection not loaded"."""
    return bool(_RELEASED.search(str(exc))) or "collection not loaded" in str(exc)


def _released_name(exc: MilvusException) -> str | None:
    """The collection a Lite error names (a server's names it by numeric id only)."""
    match = _RELEASED.search(str(exc))
    return match.group(1) if match else None


def is_missing(exc: MilvusException) -> bool:
    """Whether Milvus says the collection, alias or row does not exist."""
    text = str(exc).lower()
    return "not found" in text or "not exist" in text or "can't find" in text
