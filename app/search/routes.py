"""Search pages: the form, results for an upload, results for a gallery image."""

from __future__ import annotations

import base64

from flask import Blueprint, current_app, render_template, request

from app.exceptions import BadRequest, ServiceUnavailable
from app.extensions import encoder, vectors
from app.gallery import imaging
from app.search.forms import SearchForm
from app.search.service import SearchResult, find_similar, find_similar_to_key, parse_k

bp = Blueprint("search", __name__)


@bp.get("/")
def index() -> str:
    size, problem = _gallery_size()
    return render_template("search/index.html", form=SearchForm(), gallery_size=size,
                           problem=problem)


@bp.post("/search")
def search_upload() -> tuple[str, int] | str:
    form = SearchForm()
    if not form.validate_on_submit():
        errors = [e for field_errors in form.errors.values() for e in field_errors]
        raise BadRequest(" ".join(str(e) for e in errors) or "Choose an image file.")
    k = parse_k(form.k.data, default=current_app.config["DEFAULT_K"],
                maximum=current_app.config["MAX_K"])
    result = find_similar(form.image.data.read(), k, encoder=encoder(), vectors=vectors(),
                          max_pixels=current_app.config["MAX_IMAGE_PIXELS"], with_thumbnail=True)
    return _results(result, k)


@bp.get("/search")
def search_key() -> str:
    k = parse_k(request.args.get("k"), default=current_app.config["DEFAULT_K"],
                maximum=current_app.config["MAX_K"])
    key = request.args.get("key", "")
    if not key:
        raise BadRequest("Say which gallery image to search with (?key=...), or upload one.")
    return _results(find_similar_to_key(key, k, vectors=vectors()), k)


def _results(result: SearchResult, k: int) -> str:
    preview = ""
    if result.query.thumbnail:
        encoded = base64.b64encode(result.query.thumbnail).decode()
        preview = f"data:{imaging.THUMB_MIME};base64,{encoded}"
    return render_template("search/results.html", result=result, preview=preview, k=k,
                           form=SearchForm(k=str(k)))


def _gallery_size() -> tuple[int | None, str]:
    """The gallery size for the page, or why it cannot be told right now."""
    try:
        return vectors().count(), ""
    except ServiceUnavailable as exc:
        current_app.extensions["lookalike.serving"].reset()
        return None, exc.message
