"""The OpenAPI document (``/api/openapi.json``) and its docs page (``/api/docs``).

Why spectree: it decorates plain Flask views (our blueprints, error handlers and
CSRF exemptions stay as they are, where flask-openapi3 replaces the app and
blueprint classes), validates requests with pydantic models, describes
multipart uploads, and the ``offline`` extra ships Swagger UI's files, so the
docs work without a CDN. apispec only generates; it does not validate.

Validation errors are raised as our ``BadRequest`` (``_Plugin``), so they come
out in the one error format of app/errors.py. The docs page is our
template plus Swagger UI's script and stylesheet served from the installed
package, so the page passes our Content-Security-Policy (no inline script).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from flask import Blueprint, Flask, Response, abort, jsonify, render_template
from spectree import Response as Responses
from spectree import SecurityScheme, SecuritySchemeData, SpecTree
from spectree.plugins.flask_plugin import FlaskPlugin

from app.api.schemas import Error
from app.exceptions import BadRequest
from app.web.security import CONTENT_SECURITY_POLICY

BEARER = "bearer"
# Errors any call may answer, in our error format.
COMMON_ERRORS = (400, 404, 413, 429, 503)  # 404: an unknown gallery=
SWAGGER_FILES = {
    "swagger-ui-bundle.js": ("swagger_bundle.js", "text/javascript"),
    "swagger-ui-preset.js": ("swagger_preset.js", "text/javascript"),
    "swagger-ui.css": ("swagger_style.css", "text/css"),
}


class _Plugin(FlaskPlugin):
    """spectree's Flask plugin, with request validation errors raised as our BadRequest.

    Its own handling would answer them in its own format (and serialising the
    pydantic errors, which echo the input, fails on some inputs); raised here, they
    reach app/errors.py like every other error.
    """

    def request_validation(self, request: Any, *models: Any) -> None:
        try:
            super().request_validation(request, *models)
        except self.model_adapter.validation_error as error:
            raise BadRequest(describe(error)) from None


def describe(error: Any) -> str:
    """Where and what, for at most five problems; never the values sent."""
    problems = []
    for item in error.errors()[:5]:
        where = ".".join(str(p)[:40] for p in item.get("loc", ())) or "request"
        problems.append(f"{where}: {item.get('msg', 'invalid')}")
    return "The request does not fit this call: " + "; ".join(problems) + "."


def _raise_response_error(req: Any, resp: Any, error: Any, instance: Any, *_: Any) -> None:
    """A response that breaks the document is our bug: logged and answered as a 500."""
    if error is not None:
        raise RuntimeError(f"response does not match the OpenAPI document: {error}")


spec = SpecTree(
    "flask",
    backend=_Plugin,
    mode="strict",  # the document holds the routes decorated here, and the test checks all
    # spectree leaves out routes under its own path: give it one we do not use, and
    # serve the document at /api/openapi.json ourselves (``document`` below).
    path="_spectree",
    page_templates={},  # our own page below, not spectree's inline-script ones
    title="Lookalike API",
    version="1",
    description="Reverse image search and gallery management. Errors always have the "
    'shape {"error": {"status", "title", "message"}}. See docs/api.md.',
    security_schemes=[
        SecurityScheme(name=BEARER, data=SecuritySchemeData(type="http", scheme="bearer"))
    ],
    after=_raise_response_error,
    validation_error_status=400,
    naming_strategy=lambda model: model.__name__,  # "Error", not "Error.f179fd8"
    annotations=False,  # views read the request themselves; no model arguments
)


def responses(ok: int = 200, model: Any = None, *, errors: tuple[int, ...] = ()) -> Responses:
    """The documented answers of a call: its success and our error body for each error."""
    codes: dict[str, Any] = {f"HTTP_{ok}": model}
    for status in sorted({*COMMON_ERRORS, *errors}):
        codes[f"HTTP_{status}"] = Error
    return Responses(**codes)


def security(scope: str) -> list[dict[str, list[str]]]:
    """``manage`` calls always need a key; ``search`` ones only with SEARCH_REQUIRES_KEY."""
    return [{BEARER: []}] if scope == "manage" else [{}, {BEARER: []}]


docs = Blueprint("api_docs", __name__)


@docs.get("/openapi.json")
def document() -> Response:
    """The OpenAPI document of every decorated API route (built once per process)."""
    return jsonify(spec.spec)


@docs.get("/docs")
def page() -> Response:
    response = Response(render_template("api/docs.html"), mimetype="text/html")
    # Swagger UI sets style attributes and shows data: images; scripts stay 'self' only.
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.replace(
        "style-src 'self'", "style-src 'self' 'unsafe-inline'"
    )
    return response


@docs.get("/docs/<name>")
def asset(name: str) -> Response:
    """Swagger UI's files, from the installed offapi package (no CDN)."""
    if name not in SWAGGER_FILES:
        abort(404)
    filename, mimetype = SWAGGER_FILES[name]
    body = (resources.files("offapi") / filename).read_bytes()
    response = Response(body, mimetype=mimetype)
    response.cache_control.public = True
    response.cache_control.max_age = 86400
    return response


def init_app(app: Flask) -> None:
    """/api/openapi.json, /api/docs and its files. (No ``spec.register``: it would add
    spectree's own routes; the document is built from ``current_app``'s URL map.)"""
    app.register_blueprint(docs, url_prefix="/api")
