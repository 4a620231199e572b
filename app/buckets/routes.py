"""``POST /api/hooks/s3``: MinIO's bucket notifications, queued and answered at once.

The view checks the token, validates the body, keeps the events of objects
under a registered source, appends them to the shared queue and wakes this
process's drainer: a burst of events costs each request one small append (a
SQLite transaction, or a Redis one with several web servers), never an encode.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from app.api.openapi import BEARER, responses, spec
from app.api.schemas import HookReply
from app.buckets import hooks

bp = Blueprint("bucket_hooks", __name__)


@bp.post("/api/hooks/s3")
@spec.validate(resp=responses(202, HookReply, errors=(400, 401, 404)), tags=["bucket events"],
               security=[{BEARER: []}])
def s3_events() -> tuple[Response, int]:
    """MinIO's bucket notification (webhook target), authenticated by its auth token.

    Events of objects under a registered source are queued; the answer comes at once.
    """
    from app.buckets import service

    hooks.check_token(
        request.headers.get("Authorization"), str(current_app.config["S3_WEBHOOK_TOKEN"])
    )
    events, ignored = hooks.parse_events(request.get_data(cache=False))
    sources = service.catalog().sources()
    ours = [e for e in events if any(s.location.contains(e.bucket, e.key) for s in sources)]
    queued = service.event_queue().push(ours)
    if queued:
        service.drainer().wake()
    return jsonify({"queued": queued, "ignored": ignored + len(events) - len(ours)}), 202
