"""The bucket sources catalog in Redis, so every web server knows the same sources.

Same interface as the SQLite catalog (app/buckets/catalog.py). Keys (under
``REDIS_PREFIX``), ``<id>`` being a source's number:

- ``catalog:next`` (counter) and ``catalog:ids``: "gallery NUL bucket NUL prefix" -> id;
- ``catalog:source:<id>``: the source's record, one hash field per record field;
- ``catalog:labels:<id>``: a CSV's object key -> label;
- ``catalog:manifest:<id>``: the manifest's object keys, a sorted set read in key
  order (ZRANGEBYLEX, byte order like SQLite's), and ``catalog:entries:<id>``:
  key -> JSON ``[etag, size, content id, status]``;
- ``catalog:counts:<id>``: manifest entries per status (HINCRBY), for ``recount``;
- ``catalog:holders:<sha256 of gallery>``: "content id NUL key NUL id" of every
  indexed entry, so a row can follow a remaining copy of its content.

Writes that two hosts may race on (registering a source, recording or forgetting
entries with their counts and checkpoint, recounting) are Lua scripts: atomic on
the server. Values are checked before they are written.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import MISSING, asdict, fields
from itertools import islice
from typing import TYPE_CHECKING, Any

from app.buckets.catalog import ADDED, DUPLICATE, FAILED, CatalogBase, Known, SourceRecord
from app.exceptions import BadRequest
from app.gallery.keys import is_valid_id

if TYPE_CHECKING:
    from app.buckets.location import Location
    from app.coordination.redis_store import RedisCoordination

MAX_KEY_BYTES = 1024  # S3's limit on an object key
MAX_TEXT = 64 * 1024  # any other text value
PAGE = 1000  # entries or labels per script call
STATUSES = (ADDED, DUPLICATE, FAILED)
TYPES = {f.name: int if f.name == "id" else str for f in fields(SourceRecord)} | {
    f.name: type(f.default) for f in fields(SourceRecord) if f.default is not MISSING
}

# KEYS: ids, the new source. ARGV: name, id, field/value pairs. Returns the name's id.
CREATE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('HSET', KEYS[2], unpack(ARGV, 3))
end
return redis.call('HGET', KEYS[1], ARGV[1])
"""
# KEYS: source. ARGV: field/value pairs. A source that is not there stays absent.
UPDATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""
# Takes an entry out of the counts and the holders (KEYS: manifest, entries, counts,
# holders; ARGV[1]: the source's id). 'failed' is catalog.FAILED.
UNHOLD = """
local function unhold(key)
  local old = redis.call('HGET', KEYS[2], key)
  if not old then return end
  local e = cjson.decode(old)
  redis.call('HINCRBY', KEYS[3], e[4], -1)
  if e[3] ~= '' and e[4] ~= 'failed' then
    redis.call('ZREM', KEYS[4], e[3] .. '\\0' .. key .. '\\0' .. ARGV[1])
  end
end
"""
# KEYS: manifest, entries, counts, holders, source. ARGV: id, "1" to set the
# checkpoint, checkpoint, done ("" keeps it), now, then (key, JSON, content id, status)...
RECORD = (
    UNHOLD
    + """
for i = 6, #ARGV, 4 do
  local key, cid, status = ARGV[i], ARGV[i + 2], ARGV[i + 3]
  unhold(key)
  redis.call('HSET', KEYS[2], key, ARGV[i + 1])
  redis.call('ZADD', KEYS[1], 0, key)
  redis.call('HINCRBY', KEYS[3], status, 1)
  if cid ~= '' and status ~= 'failed' then
    redis.call('ZADD', KEYS[4], 0, cid .. '\\0' .. key .. '\\0' .. ARGV[1])
  end
end
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('HSET', KEYS[5], 'checkpoint', ARGV[3], 'updated', ARGV[5])
  if ARGV[4] ~= '' then redis.call('HSET', KEYS[5], 'done', ARGV[4]) end
end
"""
)
# KEYS: manifest, entries, counts, holders. ARGV: id, key...
FORGET = (
    UNHOLD
    + """
for i = 2, #ARGV do
  unhold(ARGV[i])
  redis.call('HDEL', KEYS[2], ARGV[i])
  redis.call('ZREM', KEYS[1], ARGV[i])
end
"""
)
# KEYS: counts, source. ARGV: now. The counters from the counts, in one step.
RECOUNT = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local c = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do c[flat[i]] = tonumber(flat[i + 1]) end
local indexed = (c['added'] or 0) + (c['duplicate'] or 0)
local failed = c['failed'] or 0
redis.call('HSET', KEYS[2], 'seen', indexed + failed, 'indexed', indexed,
  'failed', failed, 'updated', ARGV[1])
return 1
"""


class RedisCatalog(CatalogBase):
    """Sources, CSV labels and manifests shared by every server (module docstring)."""

    def __init__(self, owner: RedisCoordination) -> None:
        self.client = owner.client
        self.key = owner.key
        self.ids = owner.key("catalog", "ids")
        self._create = self.client.register_script(CREATE)
        self._update = self.client.register_script(UPDATE)
        self._record = self.client.register_script(RECORD)
        self._forget = self.client.register_script(FORGET)
        self._recount = self.client.register_script(RECOUNT)
        self._galleries: dict[int, str] = {}  # a source's gallery never changes

    def _of(self, name: str, source_id: int) -> str:
        return self.key("catalog", name, str(int(source_id)))

    def _manifest_keys(self, source_id: int) -> list[str]:
        gallery = self._galleries.get(source_id) or self.by_id(source_id).gallery
        digest = hashlib.sha256(gallery.encode()).hexdigest()
        names = ("manifest", "entries", "counts")
        return [*(self._of(n, source_id) for n in names), self.key("catalog", "holders", digest)]

    # -- sources ------------------------------------------------------------------------

    def add(
        self, gallery: str, location: Location, *, endpoint: str = "", label_rule: str = ""
    ) -> SourceRecord:
        """Register a source, or change the endpoint and label rule of a known one."""
        name = _name(gallery, location)
        existing = self.client.hget(self.ids, name)
        if existing is None:
            candidate = int(self.client.incr(self.key("catalog", "next")))
            record = SourceRecord(
                candidate, gallery, location.bucket, location.prefix, endpoint, label_rule
            )
            values = _flat(_checked({**asdict(record), "updated": time.time()}))
            existing = self._create(
                keys=[self.ids, self._of("source", candidate)], args=[name, candidate, *values]
            )
            if int(existing) == candidate:
                return self.by_id(candidate)
        self.update(int(existing), endpoint=endpoint, label_rule=label_rule)
        return self.by_id(int(existing))

    def get(self, gallery: str, location: Location) -> SourceRecord:
        found = self.client.hget(self.ids, _name(gallery, location))
        if found is None:
            raise self.unknown(location)
        return self.by_id(int(found))

    def by_id(self, source_id: int) -> SourceRecord:
        record = _record(self.client.hgetall(self._of("source", source_id)))
        if record is None:
            raise self.unknown()
        self._galleries[record.id] = record.gallery
        return record

    def sources(self, gallery: str | None = None) -> list[SourceRecord]:
        ids = self.client.hvals(self.ids)
        with self.client.pipeline(transaction=False) as reads:
            for source_id in ids:
                reads.hgetall(self._of("source", int(source_id)))
            records = [r for r in map(_record, reads.execute()) if r is not None]
        return sorted(
            (r for r in records if gallery is None or r.gallery == gallery),
            key=lambda r: (r.gallery, r.bucket, r.prefix),
        )

    def update(self, source_id: int, **values: Any) -> None:
        """Set progress and result fields (names and types checked)."""
        values = _checked(self.settable(values))
        self._update(keys=[self._of("source", source_id)], args=_flat(values))

    def recount(self, source_id: int) -> SourceRecord:
        """Set seen/indexed/failed from the manifest's counts, in one step on the server."""
        keys = [self._of("counts", source_id), self._of("source", source_id)]
        self._recount(keys=keys, args=[repr(time.time())])
        return self.by_id(source_id)

    # -- labels from a CSV ------------------------------------------------------------

    def set_labels(self, source_id: int, labels: Iterable[tuple[str, str]]) -> int:
        """Replace the source's labels at once: written aside, then renamed into place."""
        final = self._of("labels", source_id)
        aside = f"{final}:new-{secrets.token_hex(8)}"
        count = 0
        for page in batched(labels, PAGE):
            mapping = {_key(key): _text(label) for key, label in page}
            self.client.hset(aside, mapping=mapping)
            self.client.expire(aside, 3600)  # a writer that dies leaves no debris
            count += len(page)
        with self.client.pipeline(transaction=True) as swap:
            if count:
                swap.rename(aside, final)
                swap.persist(final)
            else:
                swap.delete(final)
            swap.execute()
        return count

    def labels_for(self, source_id: int, keys: Iterable[str]) -> dict[str, str]:
        keys = list(keys)
        if not keys:
            return {}
        found = self.client.hmget(self._of("labels", source_id), keys)
        return {k: v for k, v in zip(keys, found, strict=True) if v is not None}

    # -- the manifest -----------------------------------------------------------------

    def known(self, source_id: int, *, after: str = "", limit: int = 1000) -> list[Known]:
        """Up to ``limit`` manifest entries with keys after ``after``, in key order."""
        start = f"({after}" if after else "-"
        keys = self.client.zrangebylex(self._of("manifest", source_id), start, "+", 0, limit)
        if not keys:
            return []
        values = self.client.hmget(self._of("entries", source_id), keys)
        entries = (_entry(k, v) for k, v in zip(keys, values, strict=True))
        return [e for e in entries if e is not None]  # one forgotten meanwhile is skipped

    def known_one(self, source_id: int, key: str) -> Known | None:
        return _entry(key, self.client.hget(self._of("entries", source_id), key))

    def record(
        self,
        source_id: int,
        items: Iterable[Known],
        *,
        checkpoint: str | None = None,
        done: int | None = None,
    ) -> None:
        """Remember objects; the checkpoint goes with the last page, after them all."""
        keys = [*self._manifest_keys(source_id), self._of("source", source_id)]
        pages = list(batched(map(_checked_entry, items), PAGE)) or [()]
        for number, page in enumerate(pages, 1):
            last = number == len(pages) and checkpoint is not None
            head = [source_id, "1" if last else "0", _key(checkpoint, empty=True) if last else ""]
            head += ["" if done is None else int(done), repr(time.time())]
            rows = [v for k in page for v in (k.key, _json(k), k.content_id, k.status)]
            self._record(keys=keys, args=head + rows)

    def forget(self, source_id: int, keys: Iterable[str]) -> None:
        for page in batched(keys, PAGE):
            self._forget(keys=self._manifest_keys(source_id), args=[source_id, *page])

    def other_holder(
        self, gallery: str, content_id: str, *, besides: tuple[int, str]
    ) -> tuple[SourceRecord, Known] | None:
        """Another object of the gallery with this content, first in key order."""
        if not is_valid_id(content_id):
            return None
        digest = hashlib.sha256(gallery.encode()).hexdigest()
        holders = self.key("catalog", "holders", digest)
        for member in self.client.zrangebylex(holders, f"[{content_id}\0", f"({content_id}\1"):
            key, _, sid = member.partition("\0")[2].rpartition("\0")
            if (int(sid), key) == tuple(besides):
                continue
            entry = self.known_one(int(sid), key)
            if entry is not None and entry.status != FAILED:
                return self.by_id(int(sid)), entry
        return None


def batched(items: Iterable[Any], size: int) -> Iterator[tuple[Any, ...]]:
    """``items`` in tuples of ``size`` (itertools.batched from Python 3.12 on)."""
    it = iter(items)
    while page := tuple(islice(it, size)):
        yield page


def _name(gallery: str, location: Location) -> str:
    return "\0".join((_text(gallery), location.bucket, location.prefix))


def _text(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT or "\0" in value:
        raise BadRequest(f"Not a text value we can store: {str(value)[:60]!r}.")
    return value


def _key(key: object, *, empty: bool = False) -> str:
    """An S3 object key: at most 1,024 bytes, no NUL (a separator in the holders)."""
    if not isinstance(key, str) or (not key and not empty) or "\0" in key:
        raise BadRequest(f"Not an object key: {str(key)[:60]!r}.")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise BadRequest(f"An object key is at most {MAX_KEY_BYTES} bytes: {key[:60]!r}...")
    return key


def _checked(values: dict[str, Any]) -> dict[str, Any]:
    """Record fields with the record's types (an int where a float is expected is fine)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        kind = TYPES[name]
        accepted = (int, float) if kind is float else (int,)
        if kind is str:
            out[name] = _text(value)
        elif isinstance(value, bool) or not isinstance(value, accepted):
            raise ValueError(f"{name} must be a {kind.__name__}, not {value!r}")
        else:
            out[name] = repr(float(value)) if kind is float else int(value)
    return out


def _checked_entry(entry: Known) -> Known:
    _key(entry.key)
    _text(entry.etag)
    if isinstance(entry.size, bool) or not isinstance(entry.size, int) or entry.size < 0:
        raise ValueError(f"{entry.key}: size must be a count of bytes, not {entry.size!r}")
    if entry.status not in STATUSES or (entry.content_id and not is_valid_id(entry.content_id)):
        raise ValueError(f"{entry.key}: not a manifest entry: {entry!r}")
    return entry


def _flat(values: dict[str, Any]) -> list[Any]:
    return [v for pair in values.items() for v in pair]


def _json(entry: Known) -> str:
    return json.dumps([entry.etag, entry.size, entry.content_id, entry.status])


def _entry(key: str, raw: str | None) -> Known | None:
    """A manifest entry as stored; a damaged one reads as absent (a sync re-lists it)."""
    if not raw:
        return None
    try:
        etag, size, content_id, status = json.loads(raw)
        return _checked_entry(Known(key, etag, size, content_id, status))
    except (ValueError, TypeError, BadRequest):
        return None


def _record(data: dict[str, str]) -> SourceRecord | None:
    if not data:
        return None
    try:
        return SourceRecord(**{n: TYPES[n](v) for n, v in data.items() if n in TYPES})
    except (TypeError, ValueError):
        return None  # damaged: read as absent rather than crash every page
