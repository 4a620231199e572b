"""Objects -> ingest sources: each object read once, a few ahead, by a small thread pool.

Reading from S3 costs a round trip per object, which the ingest pipeline would
otherwise wait for one object at a time; here up to ``ahead`` reads are in
flight while the pipeline works. Each source carries the object's label (from
its folder, the source's CSV or the object's user metadata), the ETag of the
bytes actually read, and its location for the row (``app.buckets.inplace``).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import Any

from minio import Minio

from app.buckets.inplace import ObjectLocation, with_location
from app.buckets.listing import ObjectRef, clean_etag
from app.buckets.s3errors import s3_errors
from app.exceptions import BadRequest, NotFound
from app.gallery.sources import MAX_MEMBER_BYTES, Source

READ_AHEAD = 16
READ_THREADS = 4
META_HEADER = "x-amz-meta-"


@dataclass(frozen=True)
class Fetched:
    data: bytes
    etag: str
    headers: dict[str, str]


@dataclass(frozen=True)
class LabelRule:
    """How an object gets its label: "", "folder", "csv" (a key -> label map) or "meta:NAME"."""

    rule: str = ""
    csv: dict[str, str] | None = None  # the labels of the objects at hand, for "csv"

    @classmethod
    def parse(cls, rule: str) -> str:
        """Check a stored or typed rule; the user metadata name is lowercase letters, digits, -."""
        rule = (rule or "").strip()
        if rule in ("", "folder", "csv"):
            return rule
        name = rule.removeprefix("meta:")
        if rule.startswith("meta:") and name and all(c.isalnum() or c in "-_" for c in name):
            return f"meta:{name.lower()}"
        raise BadRequest(f"{rule[:60]!r} is not a label rule (folder, csv or meta:NAME).")

    def label(self, key: str, headers: dict[str, str]) -> str:
        if self.rule == "folder":
            return PurePosixPath(key).parent.name
        if self.rule == "csv":
            return (self.csv or {}).get(key, "")
        if self.rule.startswith("meta:"):
            return headers.get(META_HEADER + self.rule.removeprefix("meta:"), "").strip()
        return ""


def fetch(client: Minio, bucket: str, ref: ObjectRef) -> Fetched:
    """One object's bytes, with the ETag and headers of what was read."""
    if ref.size > MAX_MEMBER_BYTES:
        raise BadRequest(f"the object is {ref.size:,} bytes; the limit is {MAX_MEMBER_BYTES:,}")
    with s3_errors(f"s3://{bucket}/{ref.key}"):
        response = client.get_object(bucket, ref.key)
        try:
            data = response.read(MAX_MEMBER_BYTES + 1)
            headers = {k.lower(): v for k, v in response.headers.items()}
        finally:
            response.close()
            response.release_conn()
    if len(data) > MAX_MEMBER_BYTES:
        raise BadRequest(f"the object is larger than {MAX_MEMBER_BYTES:,} bytes")
    return Fetched(data, clean_etag(headers.get("etag")) or ref.etag, headers)


def described(
    bucket: str, ref: ObjectRef, fetched: Fetched, rule: LabelRule, endpoint: str = ""
) -> tuple[str, dict[str, Any]]:
    """The label and row metadata of an object as read: the ETag and size of these bytes."""
    where = ObjectLocation(bucket, ref.key, fetched.etag, len(fetched.data), endpoint)
    meta = with_location({"source": PurePosixPath(ref.key).name}, where)
    return rule.label(ref.key, fetched.headers), meta


@dataclass(frozen=True)
class BucketObject:
    """An object for a pipeline that reads it elsewhere (a Ray task, app/cluster): what
    ``fetch`` and ``described`` need, as plain values that travel as JSON."""

    bucket: str
    key: str
    etag: str
    size: int
    label_rule: str = ""
    csv_label: str = ""  # this key's label from the source's CSV (rule "csv")
    endpoint: str = ""

    @classmethod
    def of(cls, bucket: str, ref: ObjectRef, rule: LabelRule, endpoint: str = "") -> BucketObject:
        csv = (rule.csv or {}).get(ref.key, "")
        return cls(bucket, ref.key, ref.etag, ref.size, rule.rule, csv, endpoint)

    @property
    def name(self) -> str:
        return self.key

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> BucketObject:
        return cls(**json.loads(text))

    def read(self, client: Minio) -> tuple[bytes, str, dict[str, Any]]:
        """The bytes, label and row metadata, as ``object_sources`` gives them."""
        ref = ObjectRef(self.key, self.etag, self.size)
        fetched = fetch(client, self.bucket, ref)
        rule = LabelRule(self.label_rule, {self.key: self.csv_label})
        label, meta = described(self.bucket, ref, fetched, rule, self.endpoint)
        return fetched.data, label, meta


def object_sources(
    client: Minio,
    bucket: str,
    refs: Iterable[ObjectRef],
    rule: LabelRule,
    *,
    endpoint: str = "",
    read: Callable[[Minio, str, ObjectRef], Fetched] = fetch,
    ahead: int = READ_AHEAD,
) -> Iterator[Source]:
    """A Source per object, in order, read ``ahead`` objects in advance.

    An object gone since it was listed, too large, or refused becomes a source whose
    ``read`` raises BadRequest: the pipeline rejects it and goes on. An unreachable
    server stops the run (StorageUnavailable), to be resumed later.
    """
    pending: deque[tuple[ObjectRef, Future[Fetched]]] = deque()
    refs = iter(refs)
    with ThreadPoolExecutor(READ_THREADS, thread_name_prefix="bucket-read") as pool:
        try:
            while True:
                while len(pending) < ahead and (ref := next(refs, None)) is not None:
                    pending.append((ref, pool.submit(read, client, bucket, ref)))
                if not pending:
                    return
                ref, future = pending.popleft()
                yield _source(bucket, ref, future, rule, endpoint)
        finally:
            for _, future in pending:
                future.cancel()


def _source(
    bucket: str, ref: ObjectRef, future: Future[Fetched], rule: LabelRule, endpoint: str
) -> Source:
    try:
        fetched = future.result()
    except (BadRequest, NotFound) as exc:
        reason = exc.message

        def refuse() -> bytes:
            raise BadRequest(reason)

        return Source(ref.key, refuse)
    label, meta = described(bucket, ref, fetched, rule, endpoint)
    return Source(ref.key, lambda: fetched.data, label, meta)
