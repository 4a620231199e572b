"""Admin "Sources" page: add a bucket source, see its counters, sync it in the background.

A blueprint of its own under /admin/sources, with the admin blueprint's rule:
every route requires a login (``before_request``), every change is audited.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from wtforms.fields.choices import SelectChoice

from app import audit
from app.admin import auth
from app.admin.forms import ActionForm
from app.buckets import service
from app.buckets.catalog import SourceRecord
from app.buckets.forms import SourceForm
from app.buckets.jobs import start_sync
from app.buckets.location import parse
from app.coordination import coordination
from app.errors import wants_json
from app.exceptions import LookalikeError

bp = Blueprint("admin_sources", __name__, url_prefix="/admin/sources")


@bp.before_request
def require_login() -> ResponseReturnValue | None:
    if auth.current_admin():
        return None
    if wants_json() or request.endpoint == "admin_sources.status":
        return jsonify(
            {
                "error": {
                    "status": 401,
                    "title": "Login required",
                    "message": "Log in at /admin/login.",
                }
            }
        ), 401
    return redirect(url_for("admin.login", next=request.path if request.method == "GET" else None))


@bp.get("/")
def index() -> str:
    form = _form()
    return render_template("admin/sources.html", sources=_sources(), form=form, action=ActionForm())


@bp.get("/status")
def status() -> Response:
    """Every source's counters and sync progress, for the page's live updates."""
    response = jsonify({"sources": [_json(s) for s in _sources()]})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/")
def add() -> ResponseReturnValue:
    form = _form()
    if not form.validate_on_submit():
        flash("Give a location such as s3://photos/2024/.", "error")
        return redirect(url_for(".index"), 303)
    rule = form.label_rule.data or ""
    if rule == "meta":
        rule = f"meta:{form.label_meta.data or 'label'}"
    try:
        source = service.add_source(
            parse(form.location.data or ""), endpoint=form.endpoint.data or "", label_rule=rule
        )
        audit.record("source.add", location=str(source.location), labels=rule or None)
        _start(source)
    except LookalikeError as exc:
        flash(exc.message, "error")
    return redirect(url_for(".index"), 303)


@bp.post("/<int:source_id>/sync")
def sync(source_id: int) -> ResponseReturnValue:
    if ActionForm().validate_on_submit():
        try:
            _start(_source(source_id))
        except LookalikeError as exc:
            flash(exc.message, "error")
    return redirect(url_for(".index"), 303)


def _start(source: SourceRecord) -> None:
    pid = start_sync(
        current_app._get_current_object(),
        service.catalog(),  # type: ignore[attr-defined]
        source,
        coordination().sync_locks(),
    )
    audit.record("source.sync", location=str(source.location), pid=pid)
    flash(f"Syncing {source.location} in the background.")


def _source(source_id: int) -> SourceRecord:
    source = service.catalog().by_id(source_id)
    if source.gallery != service.gallery():
        raise LookalikeError("That source belongs to another gallery.")
    return source


def _sources() -> list[SourceRecord]:
    return service.catalog().sources(service.gallery())


def _form() -> SourceForm:
    form = SourceForm()
    form.endpoint.choices = [
        SelectChoice(n, n or "default") for n in service.endpoints().names()
    ] or [SelectChoice("", "default (LOOKALIKE_S3_ENDPOINT is not set)")]
    return form


def _json(source: SourceRecord) -> dict[str, object]:
    return {
        "id": source.id,
        "location": str(source.location),
        "phase": source.phase,
        "active": source.phase in ("queued", "syncing"),
        "done": source.done,
        "seen": source.seen,
        "indexed": source.indexed,
        "failed": source.failed,
        "last_sync": source.last_sync,
        "message": source.message,
    }
