"""API keys: created once, stored hashed in Milvus, checked on every API call.

``init_app`` registers the per-process key store (``lookalike.apikeys``): its
Milvus client is made on first use, in the worker, never at import or in the
gunicorn master.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from app.apikeys.store import build_store
    from app.extensions import Lazy

    app.extensions["lookalike.apikeys"] = Lazy(lambda: build_store(app))
