"""The objects under a location, streamed page by page in key order.

The minio client's ``list_objects`` iterator fetches one page (up to 1,000
keys) at a time, so a bucket of millions of objects is walked, never held.
Only image files (by suffix) are kept; "folder" placeholders are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import PurePosixPath

from minio import Minio

from app.buckets.location import Location
from app.buckets.s3errors import s3_errors
from app.exceptions import NotFound
from app.gallery.sources import IMAGE_SUFFIXES

STAT_THREADS = 8


@dataclass(frozen=True)
class ObjectRef:
    """A listed object: its key, ETag (without quotes) and size in bytes."""

    key: str
    etag: str
    size: int


def is_image_key(key: str) -> bool:
    name = PurePosixPath(key).name
    return PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES and not name.startswith("._")


def list_images(client: Minio, location: Location, *, after: str = "") -> Iterator[ObjectRef]:
    """Image objects under ``location`` with keys after ``after``, in key order."""
    where = str(location)
    with s3_errors(where):
        listing = client.list_objects(
            location.bucket,
            prefix=location.prefix or None,
            recursive=True,
            start_after=after or None,
        )
        for item in listing:
            if item.is_dir or not is_image_key(item.object_name):
                continue
            yield ObjectRef(item.object_name, clean_etag(item.etag), int(item.size or 0))


def stat_image(client: Minio, bucket: str, key: str) -> ObjectRef | None:
    """One object as a listing would show it, or None when it is not there."""
    try:
        with s3_errors(f"s3://{bucket}/{key}"):
            found = client.stat_object(bucket, key)
    except NotFound:
        return None
    return ObjectRef(key, clean_etag(found.etag), int(found.size or 0))


def stat_images(client: Minio, bucket: str, keys: list[str]) -> list[ObjectRef | None]:
    """``stat_image`` of each key, a few at a time (one round trip each), in order."""
    if len(keys) <= 1:
        return [stat_image(client, bucket, k) for k in keys]
    with ThreadPoolExecutor(STAT_THREADS, thread_name_prefix="bucket-stat") as pool:
        return list(pool.map(lambda key: stat_image(client, bucket, key), keys))


def clean_etag(etag: str | None) -> str:
    return (etag or "").strip().strip('"')
