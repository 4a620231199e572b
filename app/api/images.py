"""Gallery management over HTTP: add, list, read, edit and delete images (``manage`` key).

The same services as the admin pages (app/admin/service.py): the same ingest
path, the same gallery lock, the same audit entries, with ``apikey:<name>`` as
the actor. Images are addressed by their content key (``<sha256>.<ext>``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from flask import Blueprint, current_app, jsonify, request, url_for
from flask.typing import ResponseReturnValue

from app import audit
from app.admin.service import add_images, update_image, upload_sources
from app.api.openapi import responses, security, spec
from app.api.schemas import (
    Deleted,
    Image,
    ImageEdit,
    ImagesPage,
    ImagesQuery,
    ImagesUpload,
    UploadReport,
)
from app.apikeys.auth import actor, require_key
from app.exceptions import BadRequest, NotFound
from app.extensions import images, serving
from app.galleries.current import job_files
from app.galleries.service import delete_from_current
from app.gallery.ingest import Report
from app.gallery.keys import is_valid_id, is_valid_key, key_id
from app.jobs.state import JobFiles
from app.vectors.filters import KEY_PATTERN, Filters
from app.vectors.records import LABEL_LENGTH, Entry

bp = Blueprint("api_images", __name__)
AUTH = (401, 403)
TAGS = ["gallery"]

MAX_PAGE = 1000
MAX_METADATA_BYTES = 4096
MAX_METADATA_KEYS = 32


@bp.post("/images")
@require_key("manage")
@spec.validate(
    form=ImagesUpload,
    resp=responses(200, UploadReport, errors=AUTH),
    tags=TAGS,
    security=security("manage"),
)
def add() -> ResponseReturnValue:
    """Add the uploaded images (and the images of uploaded .zip archives)."""
    uploads = request.files.getlist("image")
    if not uploads:
        raise BadRequest("Send one or more images as multipart fields named 'image'.")
    label = _label(request.form.get("label", ""))
    metadata = parse_metadata(request.form.get("metadata", ""))
    sources, rejected = upload_sources(uploads, label=label, label_from_folder=False)
    sources = [replace(s, metadata={**s.metadata, **metadata}) for s in sources]
    cfg = current_app.config
    report = add_images(
        sources,
        rejected,
        serving=serving(),
        images=images(),
        files=_files(),
        batch_size=int(cfg["BATCH_SIZE"]),
        max_pixels=int(cfg["MAX_IMAGE_PIXELS"]),
        reject_copies=bool(cfg["REJECT_COPIES"]),
    )
    audit.record(
        "gallery.upload",
        user=actor(),
        files=[u.filename for u in uploads][:50],
        added=report.added,
        duplicates=report.duplicates,
        rejected=len(report.rejected),
    )
    return jsonify(_report(report)), 200


@bp.get("/images")
@require_key("manage")
@spec.validate(
    query=ImagesQuery,
    resp=responses(200, ImagesPage, errors=AUTH),
    tags=TAGS,
    security=security("manage"),
)
def list_images() -> ResponseReturnValue:
    """One page of images in key order; ``after`` is the last key of the previous page."""
    after = request.args.get("after", "")
    if after and not is_valid_key(after):
        raise BadRequest("'after' is the key of the last image of the previous page.")
    limit = _int(
        request.args.get("limit"), "limit", int(current_app.config["API_PAGE_SIZE"]), 1, MAX_PAGE
    )
    labels = tuple(_label(v) for v in request.args.getlist("label"))
    store = serving().store
    if store.resolve() is None:
        return jsonify({"images": [], "next_after": None})
    expression = Filters(labels=labels).expression() if labels else ""
    rows = store.page(key_id(after) if after else "", limit + 1, filter=expression)
    more = len(rows) > limit
    rows = rows[:limit]
    return jsonify(
        {"images": [_entry(e) for e in rows], "next_after": rows[-1].key if more and rows else None}
    )


@bp.get("/images/<key>")
@require_key("manage")
@spec.validate(
    resp=responses(200, Image, errors=(*AUTH, 404)), tags=TAGS, security=security("manage")
)
def get(key: str) -> ResponseReturnValue:
    return jsonify(_entry(_find(key)))


@bp.patch("/images/<key>")
@require_key("manage")
@spec.validate(
    json=ImageEdit,
    resp=responses(200, Image, errors=(*AUTH, 404)),
    tags=TAGS,
    security=security("manage"),
)
def edit(key: str) -> ResponseReturnValue:
    """Change the label and/or the metadata (replaced as a whole) of one image."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not body or set(body) - {"label", "metadata"}:
        raise BadRequest("Send a JSON object with 'label' and/or 'metadata'.")
    label = _label(body["label"]) if "label" in body else None
    metadata = check_metadata(body["metadata"]) if "metadata" in body else None
    before = _find(key)
    after = update_image(
        before.id, label=label, metadata=metadata, serving=serving(), files=_files()
    )
    if label is not None:
        audit.record(
            "gallery.label",
            user=actor(),
            id=after.id,
            key=after.key,
            old=before.label,
            new=after.label,
        )
    if metadata is not None:
        audit.record(
            "gallery.metadata",
            user=actor(),
            id=after.id,
            key=after.key,
            old=before.metadata,
            new=after.metadata,
        )
    return jsonify(_entry(after))


@bp.delete("/images/<key>")
@require_key("manage")
@spec.validate(
    resp=responses(200, Deleted, errors=(*AUTH, 404)), tags=TAGS, security=security("manage")
)
def remove(key: str) -> ResponseReturnValue:
    entry, _ = delete_from_current(_find(key).id)  # files kept while another gallery holds them
    audit.record("gallery.delete", user=actor(), id=entry.id, key=entry.key, label=entry.label)
    return jsonify({"deleted": entry.key})


# -- helpers ---------------------------------------------------------------------------------


def parse_metadata(text: str) -> dict[str, Any]:
    """The ``metadata`` form field: a JSON object, or nothing."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BadRequest('\'metadata\' must be a JSON object, such as {"sku": "A-12"}.') from exc
    return check_metadata(value)


def check_metadata(value: Any) -> dict[str, Any]:
    """A flat JSON object of strings, numbers and booleans with searchable keys."""
    if not isinstance(value, dict):
        raise BadRequest('\'metadata\' must be a JSON object, such as {"sku": "A-12"}.')
    if len(value) > MAX_METADATA_KEYS or len(json.dumps(value)) > MAX_METADATA_BYTES:
        raise BadRequest(
            f"'metadata' is limited to {MAX_METADATA_KEYS} keys and {MAX_METADATA_BYTES} bytes."
        )
    for name, item in value.items():
        if not KEY_PATTERN.fullmatch(name):
            raise BadRequest(f"Metadata key {name[:70]!r} is not 1 to 64 letters, digits or '_'.")
        if item is not None and not isinstance(item, str | int | float | bool):
            raise BadRequest(f"Metadata {name!r} must be a string, a number or a boolean.")
    return value


def _label(value: Any) -> str:
    if not isinstance(value, str) or len(value) > LABEL_LENGTH:
        raise BadRequest(f"A label is a string of at most {LABEL_LENGTH} characters.")
    return value.strip()


def _int(text: str | None, name: str, default: int, low: int, high: int) -> int:
    if text is None or text == "":
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise BadRequest(f"'{name}' is a whole number from {low} to {high}.")
    return int(text)


def _find(key: str) -> Entry:
    store = serving().store
    if not is_valid_key(key) or not is_valid_id(key_id(key)) or store.resolve() is None:
        raise NotFound("No gallery image has that key.")
    entry = store.get(key_id(key))
    if entry.key != key:
        raise NotFound("No gallery image has that key.")
    return entry


def _entry(entry: Entry) -> dict[str, Any]:
    return {
        "key": entry.key,
        "label": entry.label or None,
        "metadata": entry.metadata,
        "image_url": url_for("media.image", key=entry.key, _external=True),
        "thumb_url": url_for("media.thumb", key=entry.key, _external=True),
    }


def _report(report: Report) -> dict[str, Any]:
    return {
        "results": [
            {"name": o.name, "status": o.status, "key": o.key or None, "reason": o.reason or None,
             "near_duplicate_of": o.near_duplicate_of}
            for o in report.outcomes
        ],
        "added": report.added,
        "duplicates": report.duplicates,
        "rejected": len(report.rejected),
    }


def _files() -> JobFiles:
    """The current gallery's job files and write lock (``gallery=``, else the default)."""
    return job_files()
