"""``RateLimiter``: fixed-window limits per scope and caller, over a shared `limits` storage.

The `limits` library (the one under Flask-Limiter) with our own check instead of
Flask-Limiter's decorators: the caller is only known after the API key check,
and a breach must be our ``TooManyRequests`` (429, ``Retry-After``, our error
body) like every other error. A storage outage lets requests through, with a
warning: a limiter that is down must not take searches down with it.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from app.exceptions import TooManyRequests
from app.metrics.registry import RATE_LIMITED

log = logging.getLogger(__name__)

PRUNE_EVERY = 1000  # about one call in this many drops expired counters


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int  # seconds until the window resets (when refused)


class RateLimiter:
    """Limits by scope (``search``, ``manage``) for one caller id each."""

    def __init__(self, storage: Storage, limits: dict[str, RateLimitItem]) -> None:
        self.storage = storage
        self.limits = limits
        self._strategy = FixedWindowRateLimiter(storage)

    def hit(self, scope: str, caller: str) -> Verdict:
        item = self.limits.get(scope)
        if item is None:
            return Verdict(True, 0)
        try:
            allowed = self._strategy.hit(item, scope, caller)
            if allowed:
                if random.random() < 1 / PRUNE_EVERY and hasattr(self.storage, "prune"):
                    self.storage.prune()
                return Verdict(True, 0)
            reset = self._strategy.get_window_stats(item, scope, caller).reset_time
        except StorageError as exc:  # fail open, loudly
            log.warning("rate limit storage unavailable, request let through: %s", exc)
            return Verdict(True, 0)
        return Verdict(False, max(1, math.ceil(reset - time.time())))

    def enforce(self, scope: str, caller: str) -> None:
        verdict = self.hit(scope, caller)
        if not verdict.allowed:
            RATE_LIMITED.labels(scope).inc()
            item = self.limits[scope]
            raise TooManyRequests(
                f"Too many {scope} calls: the limit is {item.amount} per "
                f"{item.get_expiry()} s for each key (or address). Try again in "
                f"{verdict.retry_after} s.",
                retry_after=verdict.retry_after,
            )


def parse_limit(text: str, setting: str) -> RateLimitItem | None:
    """``20/second``, ``600 per minute``; empty or ``0`` = no limit."""
    if not str(text).strip() or str(text).strip() == "0":
        return None
    try:
        return parse(str(text))
    except ValueError as exc:
        raise ValueError(f"{setting}={text!r} is not a rate limit such as 20/second.") from exc


def storage_uri(app: Flask) -> str:
    configured = str(app.config["RATELIMIT_STORAGE"] or "")
    if configured:
        return configured
    from app.ratelimit.sqlite_storage import SCHEME

    return f"{SCHEME}://{Path(app.instance_path) / 'ratelimit.sqlite'}"


def configured_limits(app: Flask) -> dict[str, RateLimitItem]:
    """The limits by scope from the settings; a malformed one stops the app at start."""
    limits = {}
    for scope, setting in (("search", "RATELIMIT_SEARCH"), ("manage", "RATELIMIT_MANAGE")):
        item = parse_limit(app.config[setting], f"LOOKALIKE_{setting}")
        if item is not None:
            limits[scope] = item
    return limits


def build_limiter(flask_app: Flask, limits: dict[str, RateLimitItem]) -> RateLimiter:
    from app.ratelimit import sqlite_storage  # noqa: F401 - registers its scheme with `limits`

    return RateLimiter(storage_from_string(storage_uri(flask_app), wrap_exceptions=True), limits)
