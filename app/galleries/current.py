"""Which gallery a request or a CLI command works on, set in one place.

``flask.g.lookalike_gallery`` holds its name: set from ``/g/<gallery>/...`` and
``/admin/g/<gallery>/...`` URLs, from ``gallery=`` on the JSON API, from
``--gallery NAME`` on CLI commands; the default gallery when none was set. The
helpers in app/extensions.py read it, so every view and command that uses them
works on the current gallery without knowing about galleries.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app, g, request

from app.exceptions import LookalikeError
from app.galleries.registry import check_name, default_name
from app.jobs.state import JobFiles

GALLERY_DIR = "galleries"  # instance/galleries/<name>/: a non-default gallery's job files


def current_name() -> str | None:
    """The gallery named by this request or command, None when none was named."""
    return g.get("lookalike_gallery")


def use(name: str) -> None:
    """Work on gallery ``name`` from here on (UnknownGallery, a 404, if there is none)."""
    from app.extensions import galleries

    g.lookalike_gallery = galleries().get(name).name


def job_files(app: Flask | None = None, name: str | None = None) -> JobFiles:
    """The reindex and lock files of gallery ``name`` (default: the current gallery).

    The default gallery's stay directly under instance/, where they always were, so
    a running deployment upgrades in place; others live in instance/galleries/<name>/.
    """
    from app.coordination import coordination

    app = app or current_app
    name = current_name() if name is None else name
    root = Path(app.instance_path)
    default = default_name(str(app.config["COLLECTION"]))
    if not name or name == default:
        return coordination(app).job_files(default, root)
    return coordination(app).job_files(name, root / GALLERY_DIR / check_name(name))


def all_job_files(app: Flask) -> dict[str, JobFiles]:
    """Job files of every gallery that has some on disk, by gallery name."""
    from app.coordination import coordination

    root = Path(app.instance_path)
    default = default_name(str(app.config["COLLECTION"]))
    found = {default: coordination(app).job_files(default, root)}
    for folder in sorted((root / GALLERY_DIR).glob("*")):
        if folder.is_dir():
            found[folder.name] = coordination(app).job_files(folder.name, folder)
    return found


def init_app(app: Flask) -> None:
    """Gallery twins of the search and admin routes, and how a request picks its gallery.

    Call after every blueprint is registered: each ``search.*`` rule gets a twin under
    ``/g/<gallery>`` and each gallery-scoped ``admin.*`` rule one under
    ``/admin/g/<gallery>``, served by the same view. ``url_for`` fills in the
    current gallery, so every link a page makes stays in its gallery.
    """
    for rule in list(app.url_map.iter_rules()):
        twin = _twin(rule.rule, rule.endpoint)
        if twin:
            app.add_url_rule(
                twin,
                endpoint=rule.endpoint,
                methods=rule.methods,
                strict_slashes=rule.strict_slashes,
            )
    app.url_value_preprocessor(_from_url)
    app.url_defaults(_into_url)
    app.before_request(_from_api)
    app.context_processor(lambda: {"current_gallery": _current_or_none})


# Admin blueprints whose pages are about one gallery (each gets /admin/g/<gallery> twins).
ADMIN_BLUEPRINTS = ("admin.", "admin_sources.", "duplicates.")
# Admin pages about the account or every gallery, not about one.
NOT_PER_GALLERY = {"admin.login", "admin.logout", "admin.reindex_status_all",
                   "admin.keys", "admin.create_key", "admin.revoke_key"}  # keys: deployment-wide


def _twin(rule: str, endpoint: str) -> str | None:
    if endpoint.startswith("search."):
        return "/g/<gallery>" + rule
    if (
        endpoint.startswith(ADMIN_BLUEPRINTS)
        and endpoint not in NOT_PER_GALLERY
        and rule.startswith("/admin/")
    ):
        return "/admin/g/<gallery>/" + rule[len("/admin/") :]
    return None


def _from_url(endpoint: str | None, values: dict[str, Any] | None) -> None:
    if values and "gallery" in values:
        name = str(values.pop("gallery"))
        if (endpoint or "").startswith(ADMIN_BLUEPRINTS) and not _logged_in():
            return  # the login redirect comes first; names are for admins
        use(name)


def _logged_in() -> bool:
    from app.admin.auth import current_admin

    return bool(current_admin())


def _into_url(endpoint: str, values: dict[str, Any]) -> None:
    name = current_name()
    if (
        name
        and "gallery" not in values
        and current_app.url_map.is_endpoint_expecting(endpoint, "gallery")
    ):
        values["gallery"] = name
    elif values.get("gallery") in ("", None):
        values.pop("gallery", None)


def _from_api() -> None:
    if request.path.startswith("/api/"):
        name = request.args.get("gallery") or (
            request.form.get("gallery") if request.method == "POST" else None
        )
        if name:
            use(name)


def _current_or_none() -> Any:
    """The current gallery for templates, or None when Milvus cannot say."""
    from app.extensions import gallery

    try:
        return gallery()
    except LookalikeError:
        return None


def gallery_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--gallery NAME`` on a CLI command: it then works on that gallery."""

    @click.option(
        "--gallery",
        "gallery_name",
        default=None,
        metavar="NAME",
        help="The gallery to work on (default: the default gallery).",
    )
    @functools.wraps(command)
    def wrapper(*args: Any, gallery_name: str | None = None, **kwargs: Any) -> Any:
        from app.cli import fail

        if gallery_name:
            try:
                use(gallery_name)
            except LookalikeError as error:
                fail(error)
        return command(*args, **kwargs)

    return wrapper
