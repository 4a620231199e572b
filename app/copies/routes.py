"""The admin's Duplicates page: run the search, keep one of a group, mark "not duplicates".

Its own blueprint under /admin/duplicates, behind the admin login (the admin
blueprint's check, reused). Deleting goes through the admin's delete service, so a
copy leaves the image store and Milvus exactly as a delete from the gallery does.
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

from app import audit
from app.admin import auth
from app.admin.forms import ActionForm
from app.copies.job import DuplicateJob
from app.copies.marks import Marks
from app.copies.report import as_csv, report_from_json
from app.copies.service import duplicates
from app.copies.threshold import read_calibration
from app.exceptions import BadRequest
from app.extensions import images, serving, snapshot
from app.galleries.service import delete_from_current
from app.gallery.keys import is_valid_id

bp = Blueprint("duplicates", __name__, url_prefix="/admin/duplicates")


@bp.before_request
def require_login() -> ResponseReturnValue | None:
    from app.admin.routes import require_login as admin_login

    return admin_login()


@bp.context_processor
def admin_context() -> dict[str, object]:
    return {"admin_user": auth.current_admin()}


def _alias() -> str:
    return serving().store.alias


def _job() -> DuplicateJob:
    return DuplicateJob(current_app.instance_path, _alias())


def _marks() -> Marks:
    return Marks(current_app.instance_path, _alias())


@bp.get("")
def page() -> str:
    job = _job()
    state = job.state()
    calibration = read_calibration(snapshot().vectors)
    return render_template(
        "admin/duplicates.html",
        state=state,
        report=job.report(),
        calibration=calibration,
        form=ActionForm(),
        running=state.get("phase") == "running",
    )


@bp.get("/status")
def status() -> ResponseReturnValue:
    return jsonify(_job().state())


@bp.post("/run")
def run() -> ResponseReturnValue:
    if not ActionForm().validate_on_submit():
        raise BadRequest("The form expired; reload the page and try again.")
    vectors, store, marks = snapshot().vectors, images(), _marks()
    _job().start(
        lambda progress: duplicates(vectors, store, marks, on_progress=progress),
        user=auth.current_admin() or "",
    )
    audit.record("duplicates.search")
    return redirect(url_for(".page"))


@bp.post("/keep")
def keep() -> ResponseReturnValue:
    """Keep one image of a group and delete the others."""
    ids, keeper = _group_from_form(), request.form.get("keep", "")
    if keeper not in ids:
        raise BadRequest("Choose the image to keep from the group.")
    deleted = []
    for id_ in sorted(ids - {keeper}):
        entry, _ = delete_from_current(id_)  # files kept while another gallery holds them
        audit.record(
            "gallery.delete", id=entry.id, key=entry.key, label=entry.label, reason="duplicate"
        )
        deleted.append(entry.key)
    _job().resolved(ids)
    flash(f"Kept {keeper[:12]}…, deleted {len(deleted)} cop{'y' if len(deleted) == 1 else 'ies'}.")
    return redirect(url_for(".page"))


@bp.post("/separate")
def separate() -> ResponseReturnValue:
    """Mark a group "not duplicates": it does not come back in later searches."""
    ids = _group_from_form()
    _marks().add(ids, by=auth.current_admin() or "")
    audit.record("duplicates.not_duplicates", ids=sorted(ids))
    _job().resolved(ids)
    flash(f"Marked {len(ids)} images as not duplicates of each other.")
    return redirect(url_for(".page"))


@bp.get("/report.csv")
def report_csv() -> ResponseReturnValue:
    stored = _job().report()
    if stored is None:
        raise BadRequest("There is no duplicates report yet: run the search first.")
    return Response(
        as_csv(report_from_json(stored)),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=duplicates.csv"},
    )


def _group_from_form() -> set[str]:
    """The ids of a group of the stored report, as posted (checked against the report)."""
    if not ActionForm().validate_on_submit():
        raise BadRequest("The form expired; reload the page and try again.")
    ids = set(request.form.getlist("ids"))
    if len(ids) < 2 or not all(is_valid_id(i) for i in ids):
        raise BadRequest("A group is two or more gallery images.")
    report = _job().report() or {"groups": []}
    if not any({m["id"] for m in g["members"]} == ids for g in report["groups"]):
        raise BadRequest("That group is not in the current report; run the search again.")
    return ids
