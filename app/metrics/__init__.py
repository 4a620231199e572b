"""Prometheus metrics at /metrics, counted in every gunicorn worker (multiprocess mode).

gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR (a folder under instance/, emptied
at start, dead workers marked in ``child_exit``) before any worker imports
prometheus_client, so each worker writes its samples there and ``/metrics``
sums them. Without it (``flask run``, tests) the process's own registry is shown.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from app.metrics import requests
    from app.metrics.routes import bp

    requests.init_app(app)
    app.register_blueprint(bp)
