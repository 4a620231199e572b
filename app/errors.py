"""Every error becomes a response here, and only here: JSON under /api/, a page elsewhere.

Services raise domain errors (app.exceptions) with a message meant for the
user; HTTP errors from Flask/Werkzeug get the same treatment; anything else is
logged with its traceback and answered with a plain 500 that leaks nothing.
"""

from __future__ import annotations

import errno
import logging

from flask import Flask, Response, current_app, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from app.exceptions import (
    LookalikeError,
    ServiceUnavailable,
    UnknownGallery,
    VectorStoreUnavailable,
)
from app.metrics.registry import record_error

log = logging.getLogger(__name__)

MESSAGES = {
    400: "The request was not understood.",
    404: "There is nothing at this address.",
    405: "This address does not accept that method.",
    413: "The upload is too large.",
    500: "Something went wrong on our side. It has been logged.",
}


# OS errors that mean "this server cannot write its data", not a bug.
UNWRITABLE = {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.ENOTDIR}


def init_app(app: Flask) -> None:
    app.register_error_handler(LookalikeError, handle_domain_error)
    app.register_error_handler(OSError, handle_os_error)
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)


def handle_domain_error(error: LookalikeError) -> tuple[Response | str, int, dict[str, str]]:
    if isinstance(error, VectorStoreUnavailable):
        # Reconnect on the next request: a restarted server (or a restarted
        # local Lite server on a new port) is then picked up without a restart.
        current_app.extensions["lookalike.serving"].reset()
    if isinstance(error, ServiceUnavailable):
        log.warning("%s: %s", error.title, error.message)
    record_error(error)  # Milvus and storage outages, for /metrics
    if isinstance(error, UnknownGallery) and wants_json():
        return jsonify({"error": {"status": error.status, "title": error.title,
                                  "message": error.message, "galleries": error.known}}), 404
    body, status = respond(error.status, error.title, error.message)
    # Retry-After on a 429 or a shed 503, WWW-Authenticate on a 401.
    return body, status, dict(getattr(error, "headers", None) or {})


def handle_os_error(error: OSError) -> tuple[Response | str, int]:
    """A read-only or full data folder: a clear 503 instead of a stack trace."""
    if error.errno not in UNWRITABLE:
        return handle_unexpected(error)
    where = error.filename or current_app.instance_path
    log.error("cannot write %s: %s", where, error.strerror)
    return respond(503, "Storage not writable",
                   f"The server cannot write to {where} ({error.strerror}). An operator must "
                   "make its data folder writable or free disk space; nothing was half-written.")


def handle_csrf_error(error: CSRFError) -> tuple[Response | str, int]:
    return respond(400, "Form expired", "The form expired or was not sent by this site. "
                   "Reload the page and try again.")


def handle_http_error(error: HTTPException) -> tuple[Response | str, int]:
    status = error.code or 500
    if status == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
        message = f"The upload is too large: the limit is {limit / 1_048_576:.0f} MB per request."
    else:
        message = MESSAGES.get(status, error.description or "")
    return respond(status, error.name, message)


def handle_unexpected(error: Exception) -> tuple[Response | str, int]:
    if isinstance(error, HTTPException):
        return handle_http_error(error)
    log.exception("Unhandled error on %s %s", request.method, request.path)
    return respond(500, "Internal error", MESSAGES[500])


def wants_json() -> bool:
    return request.path.startswith("/api/") or (
        request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"
    )


def respond(status: int, title: str, message: str) -> tuple[Response | str, int]:
    if wants_json():
        return jsonify({"error": {"status": status, "title": title, "message": message}}), status
    return render_template("error.html", status=status, title=title, message=message), status
