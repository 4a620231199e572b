"""Admin pages: login, overview with the reindex panel, gallery upload/browse/edit/delete.

Every route but the login page requires a login: the check is the blueprint's
``before_request``, so a new route cannot forget it. Every change is written to
the audit log.
"""

from __future__ import annotations

from datetime import datetime

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
from app.admin.forms import ActionForm, LabelForm, LoginForm, UploadForm
from app.admin.service import (
    add_images,
    browse,
    count,
    overview,
    relabel,
    upload_sources,
)
from app.errors import wants_json
from app.exceptions import BadRequest, NotFound
from app.extensions import gallery as current_gallery
from app.extensions import images, serving
from app.galleries.current import job_files
from app.galleries.service import delete_from_current
from app.gallery.keys import is_valid_id
from app.jobs import launch
from app.jobs.state import JobFiles, JobRunning
from app.vectors.records import Entry

bp = Blueprint("admin", __name__, url_prefix="/admin")

PUBLIC_ENDPOINTS = {"admin.login"}
PHASES = {
    "idle": "No reindex has run yet",
    "queued": "Starting",
    "loading": "Loading the model",
    "encoding": "Encoding images",
    "indexing": "Building the index",
    "switching": "Switching",
    "done": "Done",
    "failed": "Failed",
    "cancelled": "Cancelled",
}


@bp.before_request
def require_login() -> ResponseReturnValue | None:
    if request.endpoint in PUBLIC_ENDPOINTS or auth.current_admin():
        return None
    if wants_json() or request.endpoint == "admin.reindex_status":
        return jsonify({"error": {"status": 401, "title": "Login required",
                                  "message": "Log in at /admin/login."}}), 401
    back = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("admin.login", next=back))


@bp.context_processor
def admin_context() -> dict[str, object]:
    # No form objects here: building one parses the request body, which an error page
    # (a 413 for a too large upload) must not do again.
    return {"admin_user": auth.current_admin(), "phases": PHASES}


# -- login --------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if request.method == "GET" and auth.current_admin():
        return redirect(url_for(".index"))
    form = LoginForm()
    if not form.validate_on_submit():
        auth.password_hash(current_app)  # the embedded default's password, made on first visit
        status = 400 if request.method == "POST" else 200
        return render_template("admin/login.html", form=form, error=""), status
    name = form.username.data or ""
    try:
        ok = auth.log_in(name, form.password.data or "", request.remote_addr or "")
    except auth.TooManyAttempts as exc:
        audit.record("login.refused", user=name[:64], reason="rate limit")
        return render_template("admin/login.html", form=form, error=exc.message), 429
    if not ok:
        audit.record("login.failed", user=name[:64])
        return render_template("admin/login.html", form=form,
                               error="Wrong user name or password."), 401
    audit.record("login")
    return redirect(_safe_next(request.args.get("next")))


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    audit.record("logout")
    auth.log_out()
    flash("You are logged out.")
    return redirect(url_for(".login"))


# -- overview and reindex ------------------------------------------------------------------


def _milvus_warning() -> str:
    from app.vectors.connect import local_milvus

    local = local_milvus(current_app)
    return local.warning if local is not None else ""


@bp.get("/")
def index() -> str:
    files = _files()
    launch.reap()
    stats = overview(serving, images(), configured_model=current_gallery().model,
                     files=files, milvus_warning=_milvus_warning())
    if not stats.milvus.ok:  # reconnect next time (a restarted Lite server has a new port)
        current_app.extensions["lookalike.serving"].reset()
    return render_template("admin/index.html", ov=stats, job=files.read(), action=ActionForm(),
                           log=audit.recent(15))


@bp.get("/reindex/status")
def reindex_status() -> Response:
    """The job's state as JSON, for the page's live progress (any worker can answer)."""
    launch.reap()
    response = jsonify({"job": _files().read().to_json()})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/reindex")
def reindex_start() -> ResponseReturnValue:
    return _start("reindex", "Reindex started with the model {model}. Searches keep using the "
                  "current collection until the switch.")


@bp.post("/rollback")
def rollback() -> ResponseReturnValue:
    return _start("rollback", "Rollback started.")


@bp.post("/reindex/cancel")
def reindex_cancel() -> ResponseReturnValue:
    files = _files()
    state = files.read()
    if not state.active:
        flash("No reindex is running.")
    else:
        files.request_cancel(state.id)
        audit.record(f"{state.kind}.cancel", job=state.id)
        flash("Cancelling: the job stops at its next check and leaves the alias where it was.")
    return redirect(url_for(".index", _anchor="reindex"), 303)


def _start(kind: str, started: str) -> ResponseReturnValue:
    try:
        state = launch.start(current_app._get_current_object(),  # type: ignore[attr-defined]
                             kind, user=auth.current_admin() or "")
    except JobRunning as exc:
        audit.record(f"{kind}.refused", reason="already running")
        flash(exc.message, "error")
    else:
        audit.record(f"{kind}.start", job=state.id, model=state.model)
        if state.phase == "failed":
            flash(state.error, "error")
        else:
            flash(started.format(model=state.model))
    return redirect(url_for(".index", _anchor="reindex"), 303)


# -- gallery ------------------------------------------------------------------------------


@bp.get("/gallery")
def gallery() -> str:
    after = request.args.get("after", "")
    after = after if is_valid_id(after) else ""
    start = request.args.get("start", "0")
    store = serving().store
    page = browse(store, after=after, start=int(start) if start.isdigit() else 0,
                  limit=int(current_app.config["ADMIN_PAGE_SIZE"]))
    return render_template("admin/gallery.html", page=page, total=count(store),
                           form=UploadForm(), limit_mb=_upload_limit_mb())


@bp.post("/gallery/upload")
def upload() -> tuple[str, int] | str:
    form = UploadForm()
    if not form.validate_on_submit():
        raise BadRequest(" ".join(str(e) for errs in form.errors.values() for e in errs)
                         or "Choose at least one file.")
    cfg = current_app.config
    sources, rejected = upload_sources(form.files.data, label=form.label.data or "",
                                       label_from_folder=bool(form.label_from_folder.data))
    report = add_images(sources, rejected, serving=serving(), images=images(), files=_files(),
                        batch_size=int(cfg["BATCH_SIZE"]),
                        max_pixels=int(cfg["MAX_IMAGE_PIXELS"]),
                        reject_copies=bool(cfg["REJECT_COPIES"]))
    audit.record("gallery.upload", files=[f.filename for f in form.files.data][:50],
                 added=report.added, duplicates=report.duplicates,
                 rejected=len(report.rejected))
    return render_template("admin/upload.html", report=report)


@bp.get("/gallery/<id_>")
def image(id_: str) -> str:
    entry = _entry(id_)
    return render_template("admin/image.html", entry=entry, form=LabelForm(label=entry.label))


@bp.post("/gallery/<id_>/label")
def label(id_: str) -> ResponseReturnValue:
    form = LabelForm()
    if not form.validate_on_submit():
        raise BadRequest(" ".join(str(e) for errs in form.errors.values() for e in errs))
    before = _entry(id_)
    after = relabel(id_, form.label.data or "", serving=serving(), files=_files())
    audit.record("gallery.label", id=id_, key=after.key, old=before.label, new=after.label)
    flash("Label saved.")
    return redirect(url_for(".image", id_=id_), 303)


@bp.get("/gallery/<id_>/delete")
def confirm_delete(id_: str) -> str:
    entry = _entry(id_)
    return render_template("admin/delete.html", entry=entry, form=ActionForm())


@bp.post("/gallery/<id_>/delete")
def delete(id_: str) -> ResponseReturnValue:
    # Files are shared by content: kept while another gallery holds the same image.
    entry, others = delete_from_current(_entry(id_).id)
    audit.record("gallery.delete", id=entry.id, key=entry.key, label=entry.label)
    flash(f"Deleted {entry.label or entry.key}: removed from the index"
          + (f" (its file stays: {', '.join(others)} holds it too)." if others
             else " and the image store."))
    return redirect(url_for(".gallery"), 303)


# -- helpers ----------------------------------------------------------------------------------


def _files() -> JobFiles:
    return job_files()  # the current gallery's


def _entry(id_: str) -> Entry:
    store = serving().store
    if not is_valid_id(id_) or store.resolve() is None:
        raise NotFound("There is no gallery image with that id.")
    return store.get(id_)


def _safe_next(target: str | None) -> str:
    """Only redirect back into the admin pages, never to another site."""
    if target and target.startswith("/admin") and "//" not in target and "\\" not in target:
        return target
    return url_for(".index")


def _upload_limit_mb() -> int:
    return int((current_app.config.get("MAX_CONTENT_LENGTH") or 0) / 1_048_576)


@bp.app_template_filter("admin_when")
def when(epoch: float | str | None) -> str:
    """An epoch time (or ISO string) as the server's local date and time."""
    if not epoch:
        return ""
    if isinstance(epoch, str):
        return epoch.replace("T", " ").replace("+00:00", " UTC")
    return datetime.fromtimestamp(float(epoch)).strftime("%Y-%m-%d %H:%M:%S")


@bp.app_template_filter("admin_duration")
def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(float(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
