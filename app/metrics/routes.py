"""``GET /metrics``: the Prometheus exposition of every worker (see the package docstring).

Gallery size and reindex progress are read when scraped, so they are current
without a background thread. nginx does not pass /metrics on (nginx/README.md);
Prometheus scrapes gunicorn directly.
"""

from __future__ import annotations

import os

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from app.exceptions import LookalikeError
from app.metrics.registry import GALLERY_IMAGES, REINDEX_ACTIVE, REINDEX_DONE, REINDEX_TOTAL

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    _sample_state()
    return Response(generate_latest(_registry()), mimetype=CONTENT_TYPE_LATEST)


def _registry() -> CollectorRegistry:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def _sample_state() -> None:
    """Gallery size and reindex progress, one series per gallery."""
    from app.extensions import galleries, servings
    from app.galleries.current import job_files

    try:
        for gallery in galleries().all():
            job = job_files(current_app, gallery.name).read()
            REINDEX_ACTIVE.labels(gallery.name).set(1 if job.active else 0)
            REINDEX_DONE.labels(gallery.name).set(job.done if job.active else 0)
            REINDEX_TOTAL.labels(gallery.name).set(job.total if job.active else 0)
            store = servings().get(gallery).store
            GALLERY_IMAGES.labels(gallery.name).set(store.count() if store.resolve() else 0)
    except LookalikeError:
        pass  # Milvus down: the gauge keeps its last value; health and errors say why
