"""Reindex and rollback over HTTP (``manage`` key): start, watch, cancel.

The same job launcher, lock and state file as the admin page's reindex panel
(app/jobs/launch.py), and the same audit entries, with ``apikey:<name>`` as the
actor. A job runs as its own process; these calls return at once.
"""

from __future__ import annotations

import re
from pathlib import Path

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from app import audit
from app.api.openapi import responses, security, spec
from app.api.schemas import JobResponse, ReindexRequest
from app.apikeys.auth import actor, require_key
from app.exceptions import BadRequest, ServiceUnavailable
from app.galleries.current import job_files
from app.jobs import launch
from app.jobs.state import JobFiles, JobRunning

bp = Blueprint("api_jobs", __name__)
JOB_ERRORS = (401, 403, 409)
TAGS = ["jobs"]

# A hub id (org/name) or an absolute path to a model folder on the server.
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")


class NoJob(JobRunning):
    """Cancel with nothing running: a conflict with the job's state, like a second start."""

    title = "No reindex is running"


@bp.post("/reindex")
@require_key("manage")
@spec.validate(
    json=ReindexRequest,
    resp=responses(202, JobResponse, errors=JOB_ERRORS),
    tags=TAGS,
    security=security("manage"),
)
def reindex_start() -> ResponseReturnValue:
    """Start a reindex with the configured model, or with ``{"model": ...}``."""
    body = request.get_json(silent=True) if request.content_length else {}
    if not isinstance(body, dict) or set(body) - {"model"}:
        raise BadRequest("Send no body, or a JSON object with an optional 'model'.")
    model = check_model(body["model"]) if body.get("model") is not None else None
    return _start("reindex", model)


@bp.get("/reindex")
@require_key("manage")
@spec.validate(
    resp=responses(200, JobResponse, errors=(401, 403)), tags=TAGS, security=security("manage")
)
def reindex_state() -> ResponseReturnValue:
    """The running or last job: phase, progress, rate and ETA, as on the admin page."""
    launch.reap()
    response = jsonify({"job": _files().read().to_json()})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/reindex/cancel")
@require_key("manage")
@spec.validate(
    resp=responses(202, JobResponse, errors=JOB_ERRORS), tags=TAGS, security=security("manage")
)
def reindex_cancel() -> ResponseReturnValue:
    files = _files()
    state = files.read()
    if not state.active:
        raise NoJob("No reindex or rollback is running; there is nothing to cancel.")
    files.request_cancel(state.id)
    audit.record(f"{state.kind}.cancel", user=actor(), job=state.id)
    return jsonify({"job": state.to_json(), "cancelling": True}), 202


@bp.post("/rollback")
@require_key("manage")
@spec.validate(
    resp=responses(202, JobResponse, errors=JOB_ERRORS), tags=TAGS, security=security("manage")
)
def rollback() -> ResponseReturnValue:
    """Switch back to the previous collection (and its model), as a job."""
    return _start("rollback", None)


def check_model(value: object) -> str:
    """A hub id, or an absolute path to a model folder that exists on this server."""
    if not isinstance(value, str) or not value or len(value) > 300:
        raise BadRequest(
            "'model' is a Hugging Face hub id (org/name) or the absolute path "
            "of a model folder on the server."
        )
    if value.startswith("/"):
        path = Path(value)
        if ".." in path.parts or not (path / "config.json").is_file():
            raise BadRequest(f"There is no model folder (with a config.json) at {value}.")
        return value
    if not HUB_ID.fullmatch(value) or ".." in value:
        raise BadRequest(
            "'model' is a Hugging Face hub id (org/name) or the absolute path "
            "of a model folder on the server."
        )
    return value


def _start(kind: str, model: str | None) -> ResponseReturnValue:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        state = launch.start(app, kind, user=actor(), model=model)
    except JobRunning:
        audit.record(f"{kind}.refused", user=actor(), reason="already running")
        raise
    audit.record(f"{kind}.start", user=actor(), job=state.id, model=state.model)
    if state.phase == "failed":  # the job process could not be started
        raise ServiceUnavailable(state.error)
    return jsonify({"job": state.to_json()}), 202


def _files() -> JobFiles:
    """The current gallery's job files and write lock (``gallery=``, else the default)."""
    return job_files()
