"""Lookalike: a self-hosted reverse image search engine (Flask + Milvus + HF encoders)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: type | Mapping[str, Any] | None = None) -> Flask:
    """Build the app: config -> extensions -> blueprints -> errors -> commands.

    A config class (``TestConfig``, ``ProductionConfig``) replaces the defaults and
    the LOOKALIKE_* environment still applies over it; a mapping is applied last,
    over the environment, for tests and code that embeds the app.
    """
    instance = (config.get("INSTANCE_PATH") if isinstance(config, Mapping) else None) \
        or os.environ.get("LOOKALIKE_INSTANCE_PATH")
    app = Flask(
        __name__,
        instance_path=str(Path(instance).resolve()) if instance else str(ROOT / "instance"),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    configure(app, config)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    return app


def configure(app: Flask, config: type | Mapping[str, Any] | None) -> None:
    from app.config import Config, resolve_aliases

    app.config.from_object(config if isinstance(config, type) else Config)
    app.config.from_prefixed_env("LOOKALIKE")
    if isinstance(config, Mapping):
        app.config.update(config)
    resolve_aliases(app.config)
    app.config["SECRET_KEY"] = str(app.config["SECRET_KEY"])


def register_extensions(app: Flask) -> None:
    from flask_wtf.csrf import CSRFProtect

    from app import apikeys, coordination, extensions, metrics, ratelimit
    from app.web import assets, proxy, security

    csrf = CSRFProtect(app)
    app.extensions["lookalike.csrf"] = csrf
    extensions.init_app(app)
    coordination.init_app(app)  # job state, locks, login limits: instance/ or Redis
    apikeys.init_app(app)  # API keys in Milvus, checked by app.apikeys.auth
    ratelimit.init_app(app)  # API rate limits, counted across the host's workers
    metrics.init_app(app)  # request ids, JSON request log lines, /metrics
    security.init_app(app)  # headers on every response; production secrets checked
    proxy.init_app(app)  # X-Forwarded-* trusted only when PROXY_FIX > 0
    assets.init_app(app)  # /static/x.css?v=<hash>, so proxies may cache for a year


def register_blueprints(app: Flask) -> None:
    from app import admin, api, buckets
    from app.api.routes import bp as api_bp
    from app.copies.routes import bp as duplicates_bp
    from app.galleries import admin as galleries_admin
    from app.galleries import current as galleries
    from app.media.routes import bp as media_bp
    from app.search.routes import bp as search_bp

    app.register_blueprint(search_bp)
    app.register_blueprint(media_bp)
    # The JSON API is stateless (no session cookie to ride on): no CSRF token.
    app.extensions["lookalike.csrf"].exempt(api_bp)
    app.register_blueprint(api_bp, url_prefix="/api")
    api.init_app(app)  # management routes, OpenAPI document and docs
    admin.init_app(app)
    app.register_blueprint(duplicates_bp)  # /admin/duplicates, behind the admin login
    buckets.init_app(app)  # S3 clients, /api/hooks/s3, /admin/sources
    galleries_admin.init_app(app)
    galleries.init_app(app)  # last: /g/<gallery> twins of the routes above


def register_errorhandlers(app: Flask) -> None:
    from app.errors import init_app

    init_app(app)


def register_commands(app: Flask) -> None:
    from app.cli import init_app

    init_app(app)
