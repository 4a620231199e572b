"""``require_key(scope)``: the check in front of every API route that needs a key.

The key comes as ``Authorization: Bearer <key>``. Management routes always need
a ``manage`` key; searches need a ``search`` (or ``manage``) key only when
``SEARCH_REQUIRES_KEY`` is on, so the embedded default stays open for the
browser form. The key that was accepted is ``g.api_key`` for the audit log
and the request log; each call is counted against its scope's rate limit, per
key, or per client address without one (app/ratelimit).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request

from app.apikeys.store import ApiKey, KeyStore
from app.exceptions import Forbidden, Unauthorized, VectorStoreUnavailable

F = TypeVar("F", bound=Callable[..., Any])


def key_store() -> KeyStore:
    return current_app.extensions["lookalike.apikeys"].get()


def require_key(scope: str) -> Callable[[F], F]:
    """Refuse the request (401 or 403) unless it carries a key good for ``scope``."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            check(scope)
            return view(*args, **kwargs)

        wrapper.required_scope = scope  # type: ignore[attr-defined]  # read by the OpenAPI wiring
        return wrapper  # type: ignore[return-value]

    return decorate


def check(scope: str) -> ApiKey | None:
    """The request's key if it allows ``scope``; None for an open search without one."""
    token = bearer_token()
    if token is None:
        if scope == "search" and not current_app.config["SEARCH_REQUIRES_KEY"]:
            limit(scope, None)
            return None
        raise Unauthorized(
            f"This call needs an API key with the scope '{scope}', sent as "
            "'Authorization: Bearer <key>'. An administrator makes one with "
            "`flask --app wsgi apikey create` or on /admin/keys."
        )
    try:
        key = key_store().authenticate(token)
    except VectorStoreUnavailable:
        current_app.extensions["lookalike.apikeys"].reset()  # a new client on the next call
        raise
    if key is None:
        raise Unauthorized("This API key is not valid: it is unknown, mistyped or revoked.")
    g.api_key = key
    limit(scope, key)
    if not key.allows(scope):
        raise Forbidden(
            f"The key {key.name!r} has the scope '{key.scope}'; this call needs '{scope}'."
        )
    return key


def limit(scope: str, key: ApiKey | None) -> None:
    """Count the call against the key's limit (the client address's without a key)."""
    caller = f"key:{key.name}" if key is not None else f"ip:{request.remote_addr or '?'}"
    current_app.extensions["lookalike.ratelimit"].get().enforce(scope, caller)


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer`` header, None without the header."""
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send the API key as 'Authorization: Bearer <key>'.")
    return token.strip()


def actor() -> str:
    """Who acts, for the audit log: the API key's name."""
    key = g.get("api_key")
    return f"apikey:{key.name}" if key is not None else "apikey:?"
