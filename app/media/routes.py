"""Gallery images and thumbnails, served by validated content key, never by path.

Keys are content hashes, so a key's bytes never change: responses are cached
for a year and the hash is the ETag.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from app.exceptions import NotFound
from app.extensions import images
from app.gallery import imaging
from app.gallery.keys import is_valid_key, key_id, original_name, thumb_name

bp = Blueprint("media", __name__)

ONE_YEAR = 365 * 24 * 3600


@bp.get("/images/<key>")
def image(key: str) -> Response:
    _check(key)
    extension = key.rsplit(".", 1)[1]
    try:
        return _serve(original_name(key), imaging.MIME_TYPES[extension], key)
    except NotFound:  # not in our store: an image indexed in place from a bucket?
        from app.buckets.originals import serve_in_place

        return serve_in_place(key, imaging.MIME_TYPES[extension])


@bp.get("/thumbs/<key>")
def thumb(key: str) -> Response:
    _check(key)
    return _serve(thumb_name(key), imaging.THUMB_MIME, key)


def _check(key: str) -> None:
    if not is_valid_key(key):
        raise NotFound("There is no image with that key.")


def _serve(name: str, mimetype: str, key: str) -> Response:
    etag = key_id(key)
    if etag in request.if_none_match:
        response = Response(status=304)
    else:
        response = Response(images().get(name), mimetype=mimetype)
    response.set_etag(etag)
    response.cache_control.public = True
    response.cache_control.max_age = ONE_YEAR
    response.cache_control.immutable = True
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
