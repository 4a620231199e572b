"""Galleries indexed in place from an S3 bucket: sources, listing, sync and bucket events.

The originals stay in their bucket; Lookalike keeps the row (content key, vector,
label) with the object's location in the row's metadata, and the thumbnail in
its own image store (docs/buckets.md).
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """S3 clients per process, the event hook's route and the admin's Sources page."""
    from app.buckets.admin_routes import bp as sources_bp
    from app.buckets.drain import Drainer
    from app.buckets.endpoints import Endpoints
    from app.buckets.routes import bp as hooks_bp
    from app.coordination import coordination
    from app.extensions import Lazy

    if app.config.get("PRODUCTION"):
        check_production(app)
    app.extensions["lookalike.s3_endpoints"] = Lazy(lambda: Endpoints(app.config))
    # One drainer thread per process, started by the first event it receives; the queue
    # is the coordination store's (instance folder, or Redis for several servers).
    app.extensions["lookalike.bucket_drainer"] = Lazy(
        lambda: Drainer(app, lambda: coordination(app).event_queue())
    )
    app.extensions["lookalike.csrf"].exempt(hooks_bp)  # authenticated by MinIO's token
    app.register_blueprint(hooks_bp)
    app.register_blueprint(sources_bp)  # /admin/sources, behind the admin login


def check_production(app: Flask) -> None:
    """A guessable webhook token would let anyone who reaches the app make it index or
    forget objects: refuse the development default and short tokens."""
    from app.web.security import InsecureConfig

    token = str(app.config.get("S3_WEBHOOK_TOKEN") or "")
    if (
        token
        and not token.startswith("sha256:")
        and (token.startswith("dev-only") or len(token) < 24)
    ):
        raise InsecureConfig(
            "LOOKALIKE_S3_WEBHOOK_TOKEN must be a long random value in "
            "production (at least 24 characters), or empty to turn the "
            "bucket-event hook off."
        )
