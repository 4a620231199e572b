"""``s3://BUCKET/PREFIX``: parsed, checked and normalised once.

A location names where a source's objects live. The bucket must follow S3's
naming rules and the prefix is a plain key prefix: no ``.``/``..`` segments, no
control characters, no backslashes, so nothing typed by a user can make a
listing or a key reach outside the folder it names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.exceptions import BadRequest

SCHEME = "s3://"
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_LIKE = re.compile(r"\d+\.\d+\.\d+\.\d+")
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")
MAX_PREFIX = 512


@dataclass(frozen=True, order=True)
class Location:
    """A bucket and a key prefix (``""`` or ending in ``/``)."""

    bucket: str
    prefix: str = ""

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}"

    def contains(self, bucket: str, key: str) -> bool:
        """Whether the object ``bucket/key`` is under this location."""
        return bucket == self.bucket and key.startswith(self.prefix)


def parse(text: str) -> Location:
    """``s3://bucket``, ``s3://bucket/``, ``s3://bucket/a/b`` -> a checked Location."""
    text = (text or "").strip()
    if not text.startswith(SCHEME):
        raise BadRequest(f"{text[:80]!r} is not an s3://BUCKET/PREFIX location.")
    bucket, _, prefix = text.removeprefix(SCHEME).partition("/")
    return Location(check_bucket(bucket), normalize_prefix(prefix))


def check_bucket(bucket: str) -> str:
    """S3's bucket rules: 3-63 lowercase letters, digits, dots, hyphens; not an IP address."""
    if not _BUCKET.fullmatch(bucket) or ".." in bucket or _IP_LIKE.fullmatch(bucket):
        raise BadRequest(
            f"{bucket[:80]!r} is not a valid S3 bucket name (3-63 lowercase "
            "letters, digits, dots and hyphens)."
        )
    return bucket


def normalize_prefix(prefix: str) -> str:
    """``"a/b"``, ``"/a/b/"`` and ``"a//b"`` all mean ``"a/b/"``; ``""`` is the bucket root."""
    if len(prefix) > MAX_PREFIX or _BAD_CHARS.search(prefix):
        raise BadRequest(
            "A key prefix must be at most 512 characters, without control "
            "characters or backslashes."
        )
    segments = [part for part in prefix.split("/") if part]
    if any(part in (".", "..") for part in segments):
        raise BadRequest("A key prefix may not contain '.' or '..' segments.")
    return "".join(f"{part}/" for part in segments)
