"""Search pages: the form, results for an upload, results for a gallery image."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, current_app, render_template, request, url_for

from app.api.shedding import shed_when_full
from app.copies.decision import copy_judge
from app.exceptions import BadRequest, ServiceUnavailable
from app.extensions import encoder, gallery_labels, images, vectors
from app.galleries.pages import choose_gallery
from app.gallery import imaging
from app.metrics.registry import observe_search
from app.search.forms import SearchForm
from app.search.query import SearchQuery, active_filters, parse_query
from app.search.service import SearchResult, find_similar, find_similar_to_key

bp = Blueprint("search", __name__)
# search.js keeps the uploaded photo in the browser under a random token sent with
# the form; the results page names it so its forms can post the photo again.
PHOTO_TOKEN = re.compile(r"[0-9a-f]{32}")


@bp.get("/")
def index() -> str:
    if (chosen := choose_gallery()) is not None:  # several galleries and none in the URL
        return chosen
    size, problem = _gallery_size()
    return render_template("search/index.html", form=SearchForm(), gallery_size=size,
                           problem=problem, labels=_labels() if size else {}, query=None)


@bp.post("/search")
@shed_when_full
def search_upload() -> tuple[str, int] | str:
    form = SearchForm()
    if not form.validate_on_submit():
        errors = [e for field_errors in form.errors.values() for e in field_errors]
        raise BadRequest(" ".join(str(e) for e in errors) or "Choose an image file.")
    result = find_similar(form.image.data.read(), _query(request.form), encoder=encoder(),
                          vectors=vectors(), max_pixels=current_app.config["MAX_IMAGE_PIXELS"],
                          copies=copy_judge(),
                          with_thumbnail=True)
    token = request.form.get("photo_token", "")
    return _results(result, photo_token=token if PHOTO_TOKEN.fullmatch(token) else "")


@bp.get("/search")
@shed_when_full
def search_key() -> str:
    key = request.args.get("key", "")
    if not key:
        raise BadRequest("Say which gallery image to search with (?key=...), or upload one.")
    query = _query(request.args)
    extra = {"encoder": encoder(), "images": images()} if query.box else {}
    return _results(find_similar_to_key(key, query, vectors=vectors(),
                                        max_pixels=current_app.config["MAX_IMAGE_PIXELS"],
                                        copies=copy_judge(), **extra))


def _query(values: Any) -> SearchQuery:
    cfg = current_app.config
    return parse_query(values, default_k=cfg["DEFAULT_K"], max_k=cfg["MAX_K"])


def _results(result: SearchResult, *, photo_token: str = "") -> str:
    observe_search(result.timings_ms)
    preview = ""
    if result.query.thumbnail:
        encoded = base64.b64encode(result.query.thumbnail).decode()
        preview = f"data:{imaging.THUMB_MIME};base64,{encoded}"
    query = result.request
    return render_template(
        "search/results.html", result=result, preview=preview, query=query, k=query.k,
        form=SearchForm(k=str(query.k)), labels=_labels(), filters=active_filters(query),
        next_query=replace(query, offset=result.next_offset or 0), href=_href(result.query.key),
        photo_token=photo_token)


def _href(key: str) -> Callable[[SearchQuery], str]:
    """Links for a search by key: every parameter in the GET URL, so they can be shared."""
    def href(query: SearchQuery) -> str:
        return url_for("search.search_key") + "?" + urlencode([("key", key), *query.params()])
    return href


def _labels() -> dict[str, int]:
    """The label filter's choices; none (the filter hidden) when Milvus cannot say."""
    try:
        return gallery_labels()
    except ServiceUnavailable:
        return {}


def _gallery_size() -> tuple[int | None, str]:
    """The gallery size for the page, or why it cannot be told right now."""
    try:
        return vectors().count(), ""
    except ServiceUnavailable as exc:
        current_app.extensions["lookalike.serving"].reset()
        return None, exc.message
