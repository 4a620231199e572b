"""The JSON API: search (routes.py), gallery management (images.py), jobs (jobs.py),
its OpenAPI document and docs page (openapi.py). docs/api.md describes it."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the management blueprints under /api, without CSRF (bearer keys, no cookie)."""
    from app.api import openapi
    from app.api.images import bp as images_bp
    from app.api.jobs import bp as jobs_bp

    for bp in (images_bp, jobs_bp):
        app.extensions["lookalike.csrf"].exempt(bp)
        app.register_blueprint(bp, url_prefix="/api")
    openapi.init_app(app)
