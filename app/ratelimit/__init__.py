"""Rate limits per API key (or client address) on searches and management calls.

``init_app`` registers the per-process limiter (``lookalike.ratelimit``); the
check runs in app.apikeys.auth, once the caller is known.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from app.extensions import Lazy
    from app.ratelimit.limiter import build_limiter, configured_limits

    limits = configured_limits(app)  # checked now: a typo fails at start, not per request
    app.extensions["lookalike.ratelimit"] = Lazy(lambda: build_limiter(app, limits))
