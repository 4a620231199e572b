"""The admin blueprint: login, gallery management and reindex from the browser."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Check the admin settings (fail at start, not at the first login) and register."""
    from app.admin import auth, keys  # noqa: F401  (keys: its routes join the admin blueprint)
    from app.admin.routes import bp
    from app.coordination import coordination
    from app.extensions import Lazy

    auth.check_config(app)
    cfg = app.config
    # Per worker process, or shared by every server with Redis (app/coordination/).
    app.extensions["lookalike.login_limiter"] = Lazy(lambda: coordination(app).login_limiter(
        int(cfg["ADMIN_LOGIN_ATTEMPTS"]), float(cfg["ADMIN_LOGIN_WINDOW"])))
    app.register_blueprint(bp)
