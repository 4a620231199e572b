"""JSON API: search by upload or by gallery key, the gallery's labels, and health."""

from __future__ import annotations

from typing import Any

import torch
from flask import Blueprint, current_app, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from spectree import Response as Responses
from werkzeug.datastructures import CombinedMultiDict

from app.api.openapi import responses, security, spec
from app.api.schemas import (
    HealthResponse,
    LabelsResponse,
    SearchByKey,
    SearchByUpload,
    SearchResponse,
)
from app.api.shedding import shed_when_full
from app.apikeys.auth import require_key
from app.copies.decision import copy_judge
from app.exceptions import BadRequest, LookalikeError, ModelLoadError
from app.extensions import encoder, gallery_labels, images, vectors
from app.metrics.registry import observe_search
from app.model.encoder import Encoder
from app.search.query import SearchQuery, parse_query
from app.search.service import SearchResult, find_similar, find_similar_to_key

bp = Blueprint("api", __name__)


@bp.post("/search")
@require_key("search")
@shed_when_full
@spec.validate(form=SearchByUpload, resp=responses(200, SearchResponse, errors=(401, 403)),
               tags=["search"], security=security("search"))
def search_upload() -> ResponseReturnValue:
    files = request.files.getlist("image")
    if len(files) != 1:
        raise BadRequest("Send exactly one image as the multipart field 'image'.")
    values = CombinedMultiDict([request.form, request.args])
    result = find_similar(files[0].read(), _query(values), encoder=encoder(),
                          vectors=vectors(), max_pixels=current_app.config["MAX_IMAGE_PIXELS"],
                          copies=copy_judge())
    return jsonify(_payload(result))


@bp.get("/search")
@require_key("search")
@shed_when_full
@spec.validate(query=SearchByKey, resp=responses(200, SearchResponse, errors=(401, 403, 404)),
               tags=["search"], security=security("search"))
def search_key() -> ResponseReturnValue:
    key = request.args.get("key", "")
    if not key:
        raise BadRequest("Give a gallery image key (?key=...) or POST an image.")
    query = _query(request.args)
    extra = {"encoder": encoder(), "images": images()} if query.box else {}
    result = find_similar_to_key(key, query, vectors=vectors(),
                                 max_pixels=current_app.config["MAX_IMAGE_PIXELS"],
                                 copies=copy_judge(), **extra)
    return jsonify(_payload(result))


@bp.get("/labels")
@require_key("search")
@spec.validate(resp=responses(200, LabelsResponse, errors=(401, 403)), tags=["search"],
               security=security("search"))
def labels() -> ResponseReturnValue:
    """The gallery's labels with their image counts, most images first."""
    counts = gallery_labels()
    return jsonify({"labels": [{"label": name, "count": n} for name, n in counts.items()]})


@bp.get("/health")
@spec.validate(resp=Responses(HTTP_200=HealthResponse, HTTP_503=HealthResponse), tags=["health"])
def health() -> ResponseReturnValue:
    """Readiness: model loaded, Milvus and the image store reachable."""
    report: dict[str, Any] = {"status": "ok"}
    try:
        enc = _serving_or_configured_encoder()
        report["model"] = {"id": enc.name, "dim": enc.dim, "device": enc.device,
                           "dtype": enc.dtype, "backend": enc.backend,
                           "precision": enc.backend_precision,
                           "threads": torch.get_num_threads()}
    except LookalikeError as exc:
        report["model"] = {"id": current_app.config["MODEL"], "error": exc.message}
    try:
        store = vectors()
        store.ping()
        report["milvus"] = {"mode": "lite" if store.lite else "server", "reachable": True,
                            "collection": store.alias, "gallery_size": store.count()}
    except LookalikeError as exc:
        current_app.extensions["lookalike.serving"].reset()
        report["milvus"] = {"reachable": False, "error": exc.message}
    try:
        image_store = images()
        image_store.ping()
        report["storage"] = {"backend": image_store.backend, "reachable": True}
    except LookalikeError as exc:
        report["storage"] = {"reachable": False, "error": exc.message}
    healthy = "error" not in report["model"] and report["milvus"]["reachable"] \
        and report["storage"]["reachable"]
    report["status"] = "ok" if healthy else "unavailable"
    return jsonify(report), 200 if healthy else 503


def _serving_or_configured_encoder() -> Encoder:
    """The serving collection's model; the configured one when Milvus cannot say which,
    so that health tells a model problem from a Milvus problem."""
    try:
        return encoder()
    except ModelLoadError:
        raise
    except LookalikeError:
        return current_app.extensions["lookalike.encoder"].get()


def _query(values: Any) -> SearchQuery:
    cfg = current_app.config
    return parse_query(values, default_k=cfg["DEFAULT_K"], max_k=cfg["MAX_K"])


def _payload(result: SearchResult) -> dict[str, Any]:
    observe_search(result.timings_ms)
    return {
        "results": [
            {
                "rank": m.rank,
                "key": m.key,
                "score": m.score,
                "copy": m.copy,
                "label": m.label or None,
                "image_url": url_for("media.image", key=m.key, _external=True),
                "thumb_url": url_for("media.thumb", key=m.key, _external=True),
                "metadata": m.metadata,
            }
            for m in result.matches
        ],
        "query": result.request.describe() if result.request else None,
        "next_offset": result.next_offset,
        "empty_reason": result.empty_reason or None,
        "timings_ms": result.timings_ms,
    }
