"""Rows of in-place images: where their original lives, kept in the row's metadata.

An image indexed from a bucket keeps its content key (so dedup, search by key
and reindex work as for stored images) and, under the reserved metadata key
``_s3``, the object's bucket, key, ETag and size, and the S3 endpoint's name.
Keys starting with ``_`` are Lookalike's own: search results never show them
and metadata filters cannot name them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LOCATION_FIELD = "_s3"
RESERVED_PREFIX = "_"


@dataclass(frozen=True)
class ObjectLocation:
    """Where an in-place original is: endpoint name, bucket, key, and the ETag indexed."""

    bucket: str
    key: str
    etag: str = ""
    size: int = 0
    endpoint: str = ""

    def to_metadata(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "key": self.key,
            "etag": self.etag,
            "size": self.size,
            "endpoint": self.endpoint,
        }


def location_of(metadata: dict[str, Any] | None) -> ObjectLocation | None:
    """The object a row was indexed from, or None for an image in Lookalike's own store."""
    value = (metadata or {}).get(LOCATION_FIELD)
    if not isinstance(value, dict) or not value.get("bucket") or not value.get("key"):
        return None
    return ObjectLocation(
        str(value["bucket"]),
        str(value["key"]),
        str(value.get("etag") or ""),
        int(value.get("size") or 0),
        str(value.get("endpoint") or ""),
    )


def with_location(metadata: dict[str, Any], where: ObjectLocation) -> dict[str, Any]:
    return {**metadata, LOCATION_FIELD: where.to_metadata()}


def public_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """A row's metadata without Lookalike's reserved keys, for search results."""
    return {k: v for k, v in metadata.items() if not str(k).startswith(RESERVED_PREFIX)}
