"""Originals of in-place images, served from their bucket for ``/images/<key>``.

``S3_SERVE=redirect`` answers with a short-lived presigned URL (the browser
fetches the object from S3 itself: no bytes through the app, but the bucket
must be reachable by browsers); ``stream`` (the default) relays the object
through the app in chunks. Either way an object that is gone, or whose ETag no
longer matches the one indexed (its bytes changed), is a 404 until a sync.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

from flask import Flask, Response, current_app, redirect, request
from minio import Minio

from app.buckets.inplace import ObjectLocation, location_of
from app.buckets.listing import clean_etag
from app.buckets.s3errors import s3_errors
from app.exceptions import NotFound
from app.gallery.keys import key_id

CHUNK = 64 * 1024
REDIRECT_CACHE_S = 60  # a browser may reuse a redirect this long (presigned URLs last longer)
ONE_YEAR = 365 * 24 * 3600


def locate(key: str) -> ObjectLocation:
    """The bucket object of an in-place image's content key; NotFound for anything else."""
    from app.extensions import vectors

    try:
        row = vectors().get(key_id(key))
    except NotFound:
        raise NotFound("There is no image with that key.") from None
    where = location_of(row.metadata)
    if where is None or row.key != key:
        raise NotFound("There is no image with that key.")
    return where


def serve_in_place(key: str, mimetype: str) -> Response:
    where = locate(key)
    client = _client(where)
    if str(current_app.config["S3_SERVE"]).lower() == "redirect":
        return _redirect(client, where, mimetype)
    return _stream(client, where, mimetype, key)


def read_original(where: ObjectLocation, client: Minio) -> bytes:
    """An in-place original's bytes (reindex re-encodes from them); NotFound when gone."""
    with s3_errors(f"s3://{where.bucket}/{where.key}"):
        response = client.get_object(where.bucket, where.key)
        try:
            _check_etag(where, response.headers.get("ETag"))
            return response.read()
        finally:
            response.close()
            response.release_conn()


def reader(app: Flask) -> Callable[[ObjectLocation], bytes]:
    """Read in-place originals with this app's S3 clients (for a reindex, outside requests)."""

    def read(where: ObjectLocation) -> bytes:
        client = app.extensions["lookalike.s3_endpoints"].get().client(where.endpoint)
        return read_original(where, client)

    return read


def _client(where: ObjectLocation) -> Minio:
    from app.buckets.service import endpoints

    return endpoints().client(where.endpoint)


def _check_etag(where: ObjectLocation, etag: str | None) -> None:
    if where.etag and clean_etag(etag) != where.etag:
        raise NotFound(
            f"s3://{where.bucket}/{where.key} changed since it was indexed; "
            "a sync will index its new content."
        )


def _redirect(client: Minio, where: ObjectLocation, mimetype: str) -> Response:
    seconds = int(current_app.config["S3_PRESIGN_SECONDS"])
    with s3_errors(f"s3://{where.bucket}/{where.key}"):
        _check_etag(where, client.stat_object(where.bucket, where.key).etag)
        url = client.presigned_get_object(
            where.bucket,
            where.key,
            expires=timedelta(seconds=seconds),
            response_headers={"response-content-type": mimetype},
        )
    response = redirect(url, 302)
    response.cache_control.private = True
    response.cache_control.max_age = min(REDIRECT_CACHE_S, seconds // 2)
    return response


def _stream(client: Minio, where: ObjectLocation, mimetype: str, key: str) -> Response:
    etag = key_id(key)
    if etag in request.if_none_match:
        response = Response(status=304)
    else:
        with s3_errors(f"s3://{where.bucket}/{where.key}"):
            upstream = client.get_object(where.bucket, where.key)
        try:
            _check_etag(where, upstream.headers.get("ETag"))
        except NotFound:
            upstream.close()
            upstream.release_conn()
            raise
        response = Response(_chunks(upstream), mimetype=mimetype)
        if upstream.headers.get("Content-Length"):
            response.headers["Content-Length"] = upstream.headers["Content-Length"]
    response.set_etag(etag)
    response.cache_control.public = True
    response.cache_control.max_age = ONE_YEAR
    response.cache_control.immutable = True
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _chunks(upstream) -> Iterator[bytes]:  # type: ignore[no-untyped-def]
    try:
        yield from upstream.stream(CHUNK)
    finally:
        upstream.close()
        upstream.release_conn()
