"""Every metric Lookalike exports, defined once (names ``lookalike_*``).

prometheus_client objects are module-level by design (their registry is the
process's); they hold counters, not clients or connections. Gauges say how
they combine across workers (``multiprocess_mode``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter(
    "lookalike_requests", "HTTP requests by route, method and status", ["route", "method", "status"]
)
REQUEST_SECONDS = Histogram(
    "lookalike_request_seconds",
    "HTTP request duration by route",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
SEARCH_STAGE_SECONDS = Histogram(
    "lookalike_search_stage_seconds",
    "API search time by stage: decode, embed, search, total",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "lookalike_model_batch_size", "images per model call", buckets=(1, 2, 4, 8, 16, 32, 64, 128)
)
QUEUE_DEPTH = Gauge(
    "lookalike_search_backlog", "searches waiting in this worker", multiprocess_mode="livesum"
)
SHED = Counter("lookalike_shed", "searches refused with 503 because the worker was full")
RATE_LIMITED = Counter("lookalike_rate_limited", "calls refused with 429", ["scope"])
BACKEND_ERRORS = Counter(
    "lookalike_backend_errors", "requests failed by an unreachable service", ["backend"]
)
GALLERY_IMAGES = Gauge(
    "lookalike_gallery_images",
    "images in the serving collection",
    ["gallery"],
    multiprocess_mode="mostrecent",
)
REINDEX_ACTIVE = Gauge(
    "lookalike_reindex_active",
    "1 while a reindex or rollback runs",
    ["gallery"],
    multiprocess_mode="mostrecent",
)
REINDEX_DONE = Gauge(
    "lookalike_reindex_images_done",
    "images the running job has encoded",
    ["gallery"],
    multiprocess_mode="mostrecent",
)
REINDEX_TOTAL = Gauge(
    "lookalike_reindex_images_planned",
    "images the running job will encode",
    ["gallery"],
    multiprocess_mode="mostrecent",
)


def observe_search(timings_ms: dict[str, float]) -> None:
    for stage, ms in timings_ms.items():
        SEARCH_STAGE_SECONDS.labels(stage).observe(ms / 1000)


def record_error(error: Exception) -> None:
    """Count a request that failed because Milvus or the image store was unreachable."""
    from app.exceptions import StorageUnavailable, VectorStoreUnavailable

    if isinstance(error, VectorStoreUnavailable):
        BACKEND_ERRORS.labels("milvus").inc()
    elif isinstance(error, StorageUnavailable):
        BACKEND_ERRORS.labels("storage").inc()
