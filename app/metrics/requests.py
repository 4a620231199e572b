"""Per request: the request id, one JSON log line, and the request metrics.

The id comes from ``X-Request-ID`` when nginx (or a client) sends a well-formed
one, else a new one; it is returned in ``X-Request-ID`` and is in the log line,
so one request can be followed from nginx's log to ours. The line says who
called by API key name, or by client address without one; never a key, a
password, a query string or a body.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from app.metrics.registry import REQUEST_SECONDS, REQUESTS

log = logging.getLogger("lookalike.request")
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")
HEADER = "X-Request-ID"


def init_app(app: Flask) -> None:
    app.before_request(start)
    app.after_request(finish)
    log.setLevel(logging.INFO)
    if not log.handlers and not logging.getLogger().handlers:
        # Nothing configured logging (gunicorn configures only its own loggers):
        # one JSON object per line on stderr, beside gunicorn's log.
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)


def start() -> None:
    g.request_started = time.perf_counter()
    given = request.headers.get(HEADER, "")
    g.request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def finish(response: Response) -> Response:
    started = g.get("request_started")
    if started is None:  # before_request did not run (an error before it)
        return response
    seconds = time.perf_counter() - started
    route = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
    response.headers[HEADER] = g.request_id
    REQUESTS.labels(route, request.method, str(response.status_code)).inc()
    REQUEST_SECONDS.labels(route).observe(seconds)
    key = g.get("api_key")
    line = {
        "request_id": g.request_id,
        "method": request.method,
        "route": route,
        "path": request.path[:200],
        "status": response.status_code,
        "duration_ms": round(seconds * 1000, 1),
        "key": key.name if key is not None else None,
        "client": None if key is not None else request.remote_addr,
    }
    log.info("%s", json.dumps(line))
    return response
