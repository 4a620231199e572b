"""The bucket feature's shared state in Redis: the event queue and the sync locks.

Several web servers behind a load balancer each receive MinIO's webhook calls and
may each start a sync, so both live where every server sees them.

Keys (under ``REDIS_PREFIX``):

- ``events:next`` (counter), ``events:data`` (seq -> event JSON), ``events:attempts``;
- ``events:ready``: unclaimed events, a sorted set ordered by seq;
- ``events:claims``: claimed events, seq -> lease expiry (the server's clock, ms), and
  ``events:owner``: seq -> the claim's token. A drainer renews its claims while it
  works; claims whose lease lapsed (their host died) go back to ``ready`` at the next
  claim, so no event is lost, and one finished or given back by a holder that no
  longer owns it is left to its new owner;
- ``buckets:sync:<sha256 of gallery, bucket, prefix>``: a source's sync lock, a JSON
  value naming the host, pid and start, with a lease the syncing process renews.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from app.buckets.event_queue import MAX_ATTEMPTS, Event
from app.coordination.leases import LeaseLock, Renewer
from app.jobs.state import JobRunning

if TYPE_CHECKING:
    from app.buckets.catalog import SourceRecord
    from app.coordination.redis_store import RedisCoordination

log = logging.getLogger(__name__)

NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
# KEYS: ready, claims, owner, data, attempts. ARGV: token, lease ms, limit.
CLAIM = (
    NOW
    + """
for _, seq in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  redis.call('ZREM', KEYS[2], seq)
  redis.call('HDEL', KEYS[3], seq)
  redis.call('ZADD', KEYS[1], seq, seq)
end
local out = {}
for _, seq in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)) do
  redis.call('ZREM', KEYS[1], seq)
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), seq)
  redis.call('HSET', KEYS[3], seq, ARGV[1])
  redis.call('HINCRBY', KEYS[5], seq, 1)
  table.insert(out, seq)
  table.insert(out, redis.call('HGET', KEYS[4], seq))
end
return out
"""
)
# KEYS: claims, owner. ARGV: token, lease ms, seq... Returns how many are still held.
RENEW = (
    NOW
    + """
local held = 0
for i = 3, #ARGV do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[1] then
    redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[i])
    held = held + 1
  end
end
return held
"""
)
# KEYS: ready, claims, owner, data, attempts. ARGV: token, "done" or max attempts, seq...
# Returns the data of events dropped after too many attempts.
FINISH = """
local dropped = {}
for i = 3, #ARGV do
  local seq = ARGV[i]
  if redis.call('HGET', KEYS[3], seq) == ARGV[1] then
    redis.call('ZREM', KEYS[2], seq)
    redis.call('HDEL', KEYS[3], seq)
    local attempts = tonumber(redis.call('HGET', KEYS[5], seq) or '0')
    if ARGV[2] == 'done' or attempts >= tonumber(ARGV[2]) then
      if ARGV[2] ~= 'done' then table.insert(dropped, redis.call('HGET', KEYS[4], seq)) end
      redis.call('HDEL', KEYS[4], seq)
      redis.call('HDEL', KEYS[5], seq)
    else
      redis.call('ZADD', KEYS[1], seq, seq)
    end
  end
end
return dropped
"""


class RedisEventQueue:
    """The deployment's bucket events, claimed with leases (see the module's docstring)."""

    def __init__(self, owner: RedisCoordination) -> None:
        self.client = owner.client
        self.lease = owner.lease
        self.lease_ms = max(1, int(owner.lease * 1000))
        names = ("ready", "claims", "owner", "data", "attempts")
        self.keys = [owner.key("events", name) for name in names]
        self.counter = owner.key("events", "next")
        self._claim = self.client.register_script(CLAIM)
        self._renew = self.client.register_script(RENEW)
        self._finish = self.client.register_script(FINISH)

    def push(self, events: Iterable[Event]) -> int:
        items = [
            json.dumps({"bucket": e.bucket, "key": e.key, "kind": e.kind, "at": time.time()})
            for e in events
        ]
        if not items:
            return 0
        first = int(self.client.incrby(self.counter, len(items))) - len(items) + 1
        seqs = range(first, first + len(items))
        with self.client.pipeline(transaction=True) as both:  # all queued, or none
            both.hset(self.keys[3], mapping=dict(zip(seqs, items, strict=True)))
            both.zadd(self.keys[0], {str(seq): seq for seq in seqs})
            both.execute()
        return len(items)

    def claim(self, worker: str, *, limit: int = 256) -> list[Event]:
        """Up to ``limit`` events, oldest first, under a new claim of ``worker``'s."""
        token = f"{worker}/{secrets.token_hex(8)}"
        flat = self._claim(keys=self.keys, args=[token, self.lease_ms, limit])
        events = []
        for seq, raw in zip(flat[::2], flat[1::2], strict=True):
            data = json.loads(raw)
            events.append(Event(data["bucket"], data["key"], data["kind"], int(seq), token))
        return events

    @contextmanager
    def holding(self, events: list[Event]) -> Iterator[None]:
        """Renew the claims every third of the lease while the batch is worked on."""
        if not events:
            yield
            return
        token, seqs = events[0].claim, [e.seq for e in events]

        def renew() -> bool:
            return int(self._renew(keys=self.keys[1:3], args=[token, self.lease_ms, *seqs])) > 0

        renewer = Renewer(renew, self.lease, f"{len(seqs)} bucket events")
        try:
            yield
        finally:
            renewer.stop()

    def done(self, events: Iterable[Event]) -> None:
        self._end(list(events), "done")

    def retry_later(self, events: Iterable[Event]) -> None:
        for raw in self._end(list(events), str(MAX_ATTEMPTS)):
            data = json.loads(raw)
            log.error(
                "bucket event for s3://%s/%s failed %d times; dropped (a sync will pick "
                "the object up)",
                data["bucket"],
                data["key"],
                MAX_ATTEMPTS,
            )

    def pending(self) -> int:
        return int(self.client.hlen(self.keys[3]))

    def _end(self, events: list[Event], how: str) -> list[str]:
        by_claim: dict[str, list[int]] = {}
        for event in events:
            by_claim.setdefault(event.claim, []).append(event.seq)
        dropped: list[str] = []
        for token, seqs in by_claim.items():
            dropped += self._finish(keys=self.keys, args=[token, how, *seqs])
        return dropped


class RedisSyncLocks:
    """A source's sync lock, shared by every host; the holder renews its lease."""

    def __init__(self, owner: RedisCoordination) -> None:
        self.owner = owner

    def _lock(self, source: SourceRecord) -> LeaseLock:
        name = "\0".join((source.gallery, source.bucket, source.prefix))
        digest = hashlib.sha256(name.encode()).hexdigest()
        return LeaseLock(
            self.owner.client, self.owner.key("buckets", "sync", digest), self.owner.lease
        )

    @contextmanager
    def holding(self, source: SourceRecord) -> Iterator[None]:
        lock = self._lock(source)
        value = json.dumps(
            {
                "token": secrets.token_hex(16),
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "started": time.time(),
            }
        )
        if not lock.acquire(value):
            raise JobRunning(
                f"A sync of {source.location} is already running"
                f"{self._describe(lock.holder())}. Wait for it to finish."
            )
        renewer = Renewer(lambda: lock.renew(value), lock.lease, f"the sync of {source.location}")
        try:
            yield
        finally:
            renewer.stop()
            lock.release(value)

    def holder(self, source: SourceRecord) -> str | None:
        raw = self._lock(source).holder()
        if raw is None:
            return None
        return self._describe(raw).strip() or "another process"

    @staticmethod
    def _describe(raw: Any) -> str:
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            return ""
        if not isinstance(data, dict) or not data.get("host"):
            return ""
        since = time.strftime("%H:%M:%S", time.localtime(float(data.get("started") or 0)))
        return f" on {data['host']} (pid {data.get('pid')}, since {since})"
