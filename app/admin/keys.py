"""The admin page of API keys (/admin/keys): list, create (shown once), revoke.

Routes on the admin blueprint, so its login check covers them; the same key
store as the ``apikey`` CLI, and every change in the audit log.
"""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length

from app import audit
from app.admin.forms import ActionForm
from app.admin.routes import bp
from app.apikeys.auth import key_store
from app.apikeys.store import SCOPES
from app.exceptions import BadRequest


class KeyForm(FlaskForm):
    name = StringField("Name (who the key is for)", validators=[DataRequired(), Length(max=64)])
    scope = SelectField("Scope", choices=list(SCOPES), default="search")


@bp.get("/keys")
def keys() -> str:
    return _page(KeyForm(), token="")


@bp.post("/keys")
def create_key() -> ResponseReturnValue:
    form = KeyForm()
    if not form.validate_on_submit():
        raise BadRequest(" ".join(str(e) for errs in form.errors.values() for e in errs))
    key, token = key_store().create(form.name.data or "", form.scope.data or "")
    audit.record("apikey.create", name=key.name, scope=key.scope)
    # Shown in this answer only: never stored, never flashed into the session cookie.
    return _page(KeyForm(formdata=None), token=token, created=key.name)


@bp.post("/keys/<name>/revoke")
def revoke_key(name: str) -> ResponseReturnValue:
    if not ActionForm().validate_on_submit():
        raise BadRequest("The form expired. Reload the page and try again.")
    key = key_store().revoke(name)
    audit.record("apikey.revoke", name=key.name)
    flash(f"API key {key.name!r} revoked: every worker refuses it within a few seconds.")
    return redirect(url_for(".keys"), 303)


def _page(form: KeyForm, *, token: str, created: str = "") -> str:
    return render_template(
        "admin/keys.html",
        keys=key_store().list(),
        form=form,
        action=ActionForm(),
        token=token,
        created=created,
    )
