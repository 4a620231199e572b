"""MinIO bucket notifications (webhook target): the token check and the event body.

MinIO posts one JSON document per event, ``{"EventName": ..., "Key": ...,
"Records": [{"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": ...},
"object": {"key": <URL-encoded key>, "eTag": ..., ...}}}]}`` (the S3 event
format), with ``Authorization: Bearer <auth_token>``. The token is compared as a
SHA-256 digest in constant time; the configuration may hold the digest only
(``sha256:<hex>``). Events are hints: the drainer checks each object in its bucket
before acting, so their order and repeats do not matter.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any
from urllib.parse import unquote_plus

from app.buckets.event_queue import CREATED, REMOVED, Event
from app.buckets.location import check_bucket
from app.exceptions import BadRequest, LookalikeError, NotFound

MAX_RECORDS = 1000
MAX_KEY = 1024
_BAD_KEY = re.compile(r"[\x00-\x1f\x7f]")
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")


class HookUnauthorized(LookalikeError):
    status = 401
    title = "Not authorized"


def expected_digest(configured: str) -> bytes:
    """The digest of the configured token ("" means the hook is off: 404)."""
    configured = (configured or "").strip()
    if not configured:
        raise NotFound("Bucket events are not enabled here (set LOOKALIKE_S3_WEBHOOK_TOKEN).")
    match = _DIGEST.fullmatch(configured.lower())
    return bytes.fromhex(match[1]) if match else hashlib.sha256(configured.encode()).digest()


def token_digest(token: str) -> str:
    """What to put in LOOKALIKE_S3_WEBHOOK_TOKEN to keep only the token's hash."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def check_token(authorization: str | None, configured: str) -> None:
    """Accept ``Bearer <token>`` (or the bare token, as older MinIO sends it)."""
    expected = expected_digest(configured)
    presented = (authorization or "").strip()
    if presented.lower().startswith("bearer "):
        presented = presented[7:].strip()
    digest = hashlib.sha256(presented.encode()).digest()
    if not presented or not hmac.compare_digest(digest, expected):
        raise HookUnauthorized("The webhook token is missing or wrong.")


def parse_events(body: bytes) -> tuple[list[Event], int]:
    """The object events of a notification body, and how many records were ignored
    (other event types). Anything malformed is a 400 that names the problem."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The body is not JSON.") from None
    records = document.get("Records") if isinstance(document, dict) else None
    if not isinstance(records, list) or len(records) > MAX_RECORDS:
        raise BadRequest(f"The body needs a Records list of at most {MAX_RECORDS} events.")
    events, ignored = [], 0
    for number, record in enumerate(records, 1):
        event = _event(record, number)
        if event is None:
            ignored += 1
        else:
            events.append(event)
    return events, ignored


def _event(record: Any, number: int) -> Event | None:
    if not isinstance(record, dict):
        raise BadRequest(f"Record {number} is not an object.")
    name = record.get("eventName")
    if not isinstance(name, str):
        raise BadRequest(f"Record {number} has no eventName.")
    if name.startswith("s3:ObjectCreated:"):
        kind = CREATED
    elif name.startswith("s3:ObjectRemoved:"):
        kind = REMOVED
    else:
        return None
    s3 = record.get("s3")
    try:
        bucket = s3["bucket"]["name"]
        raw_key = s3["object"]["key"]
    except (TypeError, KeyError):
        raise BadRequest(f"Record {number} lacks s3.bucket.name or s3.object.key.") from None
    if not isinstance(bucket, str) or not isinstance(raw_key, str):
        raise BadRequest(f"Record {number}: the bucket and key must be strings.")
    key = unquote_plus(raw_key)
    if not key or len(key) > MAX_KEY or _BAD_KEY.search(key):
        raise BadRequest(
            f"Record {number}: the object key is empty, too long or has control characters."
        )
    try:
        return Event(check_bucket(bucket), key, kind)
    except BadRequest as exc:
        raise BadRequest(f"Record {number}: {exc.message}") from None
