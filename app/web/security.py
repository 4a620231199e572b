"""Security headers on every response, and start-up checks of a production config.

The policy allows no inline script or style and no framing: pages load only
their own CSS and JS; images may also be data: (the query preview) or blob:
(the drag-and-drop preview).
"""

from __future__ import annotations

from flask import Flask, Response

from app.config import DEV_SECRET_KEY

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "img-src 'self' data: blob:",
    "style-src 'self'",
    "script-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


class InsecureConfig(RuntimeError):
    """The production config is missing a secret: refuse to start rather than run open."""


def init_app(app: Flask) -> None:
    if app.config.get("PRODUCTION"):
        check_production(app)
    app.after_request(add_headers)


def add_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def check_production(app: Flask) -> None:
    key = str(app.config.get("SECRET_KEY") or "")
    if key == DEV_SECRET_KEY or len(key) < 32:
        raise InsecureConfig(
            "LOOKALIKE_SECRET_KEY must be set to a long random value in production (at least "
            "32 characters), e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
        )
