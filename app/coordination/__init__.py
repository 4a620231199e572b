"""How the processes of one deployment coordinate: files on one machine, or Redis.

``LOOKALIKE_REDIS_URL`` chooses, once per process: empty (the embedded default)
keeps the job state, locks, login limits, audit log, bucket events, bucket sync
locks and sources catalog under ``instance/`` (app/coordination/local.py); a Redis
URL keeps them where every web server sees them (app/coordination/redis_store.py,
redis_buckets.py, redis_catalog.py).
``check_config`` refuses, at start, a deployment that would have several servers
each believing it is alone.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, current_app

from app.coordination.base import Coordination

LOOPBACK = ("localhost", "127.0.0.1", "::1", "")


def init_app(app: Flask) -> None:
    from app.extensions import Lazy

    check_config(app)
    app.extensions["lookalike.coordination"] = Lazy(lambda: build(app))


def coordination(app: Flask | None = None) -> Coordination:
    return (app or current_app).extensions["lookalike.coordination"].get()


def build(app: Flask) -> Coordination:
    cfg = app.config
    url = str(cfg.get("REDIS_URL") or "")
    if not url:
        from app.coordination.local import LocalCoordination

        return LocalCoordination(app.instance_path)
    from app.coordination.redis_store import RedisCoordination, connect

    return RedisCoordination(
        connect(url, float(cfg["REDIS_TIMEOUT"])),
        prefix=str(cfg["REDIS_PREFIX"]),
        lease=float(cfg["REDIS_LEASE_SECONDS"]),
    )


def check_config(app: Flask) -> None:
    """Refuse settings with which several web servers would not agree (docs/deploy.md)."""
    cfg = app.config
    if cfg.get("REDIS_URL"):
        if not str(cfg.get("REDIS_URL")).startswith(("redis://", "rediss://", "unix://")):
            raise RuntimeError("LOOKALIKE_REDIS_URL must be a redis://, rediss:// or unix:// URL.")
        if not cfg.get("ADMIN_PASSWORD_HASH"):
            raise RuntimeError(
                "LOOKALIKE_REDIS_URL is set, so several web servers may share this deployment, "
                "and each needs the same admin password: set LOOKALIKE_ADMIN_PASSWORD_HASH (make "
                "it with `flask --app wsgi admin hash-password`). No password is generated."
            )
        return
    if cfg.get("PRODUCTION") and not cfg.get("SINGLE_HOST") and remote_milvus(cfg["MILVUS_URI"]):
        raise RuntimeError(
            f"LOOKALIKE_MILVUS_URI points at a Milvus server on another host "
            f"({cfg['MILVUS_URI']}), so this may be one of several web servers, and without "
            "Redis each would run its own reindex and lose uploads during another's switch. "
            "Set LOOKALIKE_REDIS_URL (several servers), or LOOKALIKE_SINGLE_HOST=true if this "
            'is the only web server (docs/deploy.md, "Several web servers").'
        )


def remote_milvus(uri: object) -> bool:
    """Whether ``uri`` is a Milvus server that other hosts could share (not loopback)."""
    text = str(uri or "")
    if "://" not in text:
        return False  # the embedded default or a Lite database: this machine only
    host = urlsplit(text).hostname or ""
    return host not in LOOPBACK and not host.startswith("127.")
