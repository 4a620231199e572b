"""Admin login: one account from the environment, a hashed password, a login rate limit.

The password is only ever compared with a werkzeug hash (scrypt by default).
Without ``LOOKALIKE_ADMIN_PASSWORD_HASH`` the embedded default generates a
password once per instance folder, keeps its hash in
``instance/admin-password.hash`` (created atomically, so several gunicorn
workers agree on one) and logs the clear text once; until it is changed
(``admin reset-password``) ``make run`` shows it again (app/admin/first_password.py).
``ProductionConfig`` refuses to start instead. Sessions are Flask's signed cookie (HttpOnly,
SameSite=Lax), cleared at login against fixation, and end after
``ADMIN_SESSION_HOURS`` or when the password hash changes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import threading
import time
from collections import deque
from pathlib import Path

import click
from flask import Flask, current_app, session
from werkzeug.security import check_password_hash, generate_password_hash

from app.admin import first_password
from app.exceptions import LookalikeError
from app.files import atomic_write

log = logging.getLogger(__name__)

PASSWORD_FILE = "admin-password.hash"
HASH_METHODS = ("scrypt:", "pbkdf2:")
MAX_TRACKED = 10_000  # (user, IP) pairs remembered by the login limiter


class TooManyAttempts(LookalikeError):
    status = 429
    title = "Too many failed logins"


def check_config(app: Flask) -> None:
    """At startup: refuse a missing or malformed hash where one is required, and in the
    embedded default under a server (``make run``) make the one-time password now, so
    it is printed at start rather than at the first login."""
    configured = str(app.config.get("ADMIN_PASSWORD_HASH") or "")
    if configured and not configured.startswith(HASH_METHODS):
        raise RuntimeError("LOOKALIKE_ADMIN_PASSWORD_HASH is not a password hash. Make one with "
                           "`flask --app wsgi admin hash-password`.")
    if not configured and not app.config.get("ADMIN_ONE_TIME_PASSWORD"):
        raise RuntimeError("No admin password: set LOOKALIKE_ADMIN_PASSWORD_HASH to a hash made "
                           "with `flask --app wsgi admin hash-password`.")
    if not configured and not app.testing and click.get_current_context(silent=True) is None:
        password_hash(app)


def password_hash(app: Flask) -> str:
    """The admin's password hash: configured, or the embedded default's one-time one."""
    configured = str(app.config.get("ADMIN_PASSWORD_HASH") or "")
    return configured or _one_time_hash(Path(app.instance_path) / PASSWORD_FILE, app)


def _one_time_hash(path: Path, app: Flask) -> str:
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    password = first_password.new_password()
    hashed = generate_password_hash(password)
    try:  # fails if another worker made one first: theirs wins
        atomic_write(path, (hashed + "\n").encode(), mode=0o600, overwrite=False)
    except FileExistsError:
        return path.read_text().strip()
    first_password.keep(path.parent, password)  # for `make run` to show (gunicorn.conf.py)
    app.logger.warning(
        "\n%s\nAdmin login for %s: user %r, password %s\n(generated once; its hash is in %s. "
        "Change it with `flask --app wsgi admin reset-password`, or set "
        "LOOKALIKE_ADMIN_PASSWORD_HASH to choose your own.)\n%s",
        "=" * 72, "/admin", app.config["ADMIN_USER"], password, path, "=" * 72,
    )
    return hashed


class LoginLimiter:
    """Failed logins per (user, IP) in a sliding window; in-process, so per worker."""

    def __init__(self, attempts: int, window: float) -> None:
        self.attempts = attempts
        self.window = window
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def wait(self, key: tuple[str, str]) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        with self._lock:
            times = self._recent(key)
            if len(times) < self.attempts:
                return 0.0
            return max(0.0, times[0] + self.window - time.monotonic())

    def failed(self, key: tuple[str, str]) -> None:
        with self._lock:
            if len(self._failures) >= MAX_TRACKED:
                self._failures.pop(next(iter(self._failures)))
            self._recent(key).append(time.monotonic())

    def succeeded(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] < time.monotonic() - self.window:
            times.popleft()
        return times


def limiter() -> LoginLimiter:
    return current_app.extensions["lookalike.login_limiter"].get()


def log_in(username: str, password: str, ip: str) -> bool:
    """Check the credentials (raising TooManyAttempts when rate-limited) and start a
    fresh session on success."""
    cfg = current_app.config
    key = (username.strip().lower()[:64], ip)
    wait = limiter().wait(key)
    if wait:
        minutes = max(1, math.ceil(wait / 60))
        raise TooManyAttempts(f"Too many failed logins from this address. Try again in "
                              f"{minutes} minute{'s' if minutes > 1 else ''}.")
    hashed = password_hash(current_app)
    # Always check the hash, so a wrong user name takes as long as a wrong password.
    password_ok = check_password_hash(hashed, password)
    if not (hmac.compare_digest(username.encode(), str(cfg["ADMIN_USER"]).encode())
            and password_ok):
        limiter().failed(key)
        return False
    limiter().succeeded(key)
    session.clear()  # no session fixation: nothing from before the login survives
    session["admin_user"] = str(cfg["ADMIN_USER"])
    session["admin_since"] = time.time()
    session["admin_key"] = _key(hashed)
    return True


def log_out() -> None:
    session.clear()


def current_admin() -> str | None:
    """The logged-in admin's name, or None (no login, expired, or the password changed)."""
    user = session.get("admin_user")
    if not user or user != current_app.config["ADMIN_USER"]:
        return None
    hours = float(current_app.config["ADMIN_SESSION_HOURS"])
    if time.time() - float(session.get("admin_since", 0)) > hours * 3600:
        return None
    if session.get("admin_key") != _key(password_hash(current_app)):
        return None
    return str(user)


def _key(hashed: str) -> str:
    """A short fingerprint of the password hash: changing the password ends sessions."""
    return hashlib.sha256(hashed.encode()).hexdigest()[:16]
