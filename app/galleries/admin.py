"""Admin pages for the galleries: list with stats, create, retitle, delete.

Each gallery's own pages (upload, browse, relabel, delete, reindex, rollback) are
the admin blueprint's, under ``/admin/g/<name>/...`` (app/galleries/current.py).
"""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from app import audit
from app.admin import auth
from app.admin.forms import ActionForm
from app.admin.routes import require_login
from app.exceptions import BadRequest, LookalikeError
from app.extensions import galleries, images, servings
from app.galleries import service
from app.galleries.current import job_files
from app.galleries.forms import CreateForm, TitleForm

bp = Blueprint("galleries", __name__, url_prefix="/admin/galleries")
bp.before_request(require_login)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.get("/")
def index() -> str:
    return _page(CreateForm())


@bp.post("/")
def create() -> ResponseReturnValue:
    form = CreateForm()
    if not form.validate_on_submit():
        flash(" ".join(str(e) for errs in form.errors.values() for e in errs), "error")
        return _page(form), 400
    model = (form.model.data or "").strip() or str(current_app.config["MODEL"])
    gallery = galleries().create(form.name.data or "", title=form.title.data or "", model=model)
    audit.record("galleries.create", name=gallery.name, model=gallery.model)
    flash(
        f"Gallery {gallery.name!r} created with the model {gallery.model}. Upload images "
        "to it from its gallery page."
    )
    return redirect(url_for(".index"), 303)


@bp.post("/<name>/title")
def retitle(name: str) -> ResponseReturnValue:
    form = TitleForm()
    if not form.validate_on_submit():
        raise BadRequest(" ".join(str(e) for errs in form.errors.values() for e in errs))
    gallery = galleries().retitle(name, form.title.data or "")
    audit.record("galleries.retitle", name=name, title=gallery.title)
    flash(f"Gallery {name!r} is now titled {gallery.title!r}.")
    return redirect(url_for(".index"), 303)


@bp.get("/<name>/delete")
def confirm_delete(name: str) -> str:
    gallery = galleries().get(name)
    count = service.image_count(servings().store_for(gallery.alias))
    return render_template("galleries/delete.html", gallery=gallery, count=count, form=ActionForm())


@bp.post("/<name>/delete")
def delete(name: str) -> ResponseReturnValue:
    held = service.delete_gallery(
        name, servings=servings(), images=images(), files=job_files(current_app, name)
    )
    audit.record("galleries.delete", name=name, images=held, user=auth.current_admin())
    flash(
        f"Deleted the gallery {name!r} ({held} images). Image files another gallery holds "
        "were kept."
    )
    return redirect(url_for(".index"), 303)


@bp.app_context_processor
def gallery_rows() -> dict[str, object]:
    """``gallery_rows()`` for the admin overview's galleries panel (empty when Milvus is
    down: the overview says so already)."""

    def rows() -> list[service.GalleryRow]:
        try:
            return _rows()
        except LookalikeError:
            return []

    return {"gallery_rows": rows}


def _rows() -> list[service.GalleryRow]:
    galleries().invalidate()  # an admin page: fresh, whichever worker made a change
    by_name = {g.name: job_files(current_app, g.name) for g in galleries().all()}
    return service.rows(servings(), by_name)


def _page(form: CreateForm) -> str:
    return render_template(
        "galleries/index.html",
        rows=_rows(),
        form=form,
        title_form=TitleForm(),
        action=ActionForm(),
    )
