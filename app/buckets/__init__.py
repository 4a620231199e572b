"""Galleries indexed in place from an S3 bucket: sources, listing, sync and bucket events.

The originals stay in their bucket; Lookalike keeps the row (content key, vector,
label) with the object's location in the row's metadata, and the thumbnail in
its own image store (docs/buckets.md).
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """S3 clients per process, the event hook's route and the admin's Sources page."""
    from app.buckets.endpoints import Endpoints
    from app.extensions import Lazy

    app.extensions["lookalike.s3_endpoints"] = Lazy(lambda: Endpoints(app.config))
