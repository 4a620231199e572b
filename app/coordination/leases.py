"""Locks with leases in Redis: a holder renews its lease, a dead holder's lapses.

A file lock dies with its process; a lock in Redis would outlive a crashed
host forever, so every hold here expires after ``lease`` seconds unless the
holder renews it (``Renewer``, every third of the lease). Compare-and-act steps
are Lua scripts, so they are atomic on the server, and the server's clock
(``TIME``) dates the readers-writer lock's members, so hosts' clocks need not agree.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from app.coordination.base import CoordinationUnavailable

log = logging.getLogger(__name__)

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS: writers (sorted set: token -> expiry ms), switch (string: token).
# A writer enters only while no switch holds or waits for the lock.
WRITE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[3] == 'renew' and not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
if ARGV[3] == 'enter' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
# The switch reserves the lock at once (new writers wait), and holds it when the
# writers inside have left: 0 = another switch has it, 1 = waiting, 2 = held.
SWITCH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
if redis.call('ZCARD', KEYS[1]) > 0 then return 1 end
return 2
"""


class Renewer:
    """Renews a lease in a daemon thread until stopped (or until renewing fails)."""

    def __init__(self, renew: Callable[[], bool], lease: float, what: str) -> None:
        self._renew = renew
        self._interval = lease / 3
        self._what = what
        self._stop = threading.Event()
        self.lost = False
        self._thread = threading.Thread(target=self._run, name=f"renew {what}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                held = self._renew()
            except CoordinationUnavailable as exc:
                log.warning("could not renew the lease of %s: %s", self._what, exc.message)
                continue  # Redis may be back before the lease ends
            if not held:
                self.lost = True
                log.error("the lease of %s lapsed: another holder may take it", self._what)
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


class LeaseLock:
    """An exclusive lock: one key holding the holder's token, with a lease."""

    def __init__(self, client: Any, key: str, lease: float) -> None:
        self.client = client
        self.key = key
        self.lease_ms = max(1, int(lease * 1000))
        self.lease = lease
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)

    def acquire(self, value: str) -> bool:
        """Take the lock with ``value`` (which must contain a unique token)."""
        return bool(self.client.set(self.key, value, nx=True, px=self.lease_ms))

    def holder(self) -> str | None:
        return self.client.get(self.key)

    def renew(self, value: str) -> bool:
        return bool(self._renew(keys=[self.key], args=[value, self.lease_ms]))

    def release(self, value: str) -> bool:
        return bool(self._release(keys=[self.key], args=[value]))


class ReadersWriterLock:
    """Writers shared, one exclusive switch; every hold has a lease."""

    def __init__(self, client: Any, writers_key: str, switch_key: str, lease: float) -> None:
        self.client = client
        self.keys = [writers_key, switch_key]
        self.lease = lease
        self.lease_ms = max(1, int(lease * 1000))
        self._write = client.register_script(WRITE)
        self._switch = client.register_script(SWITCH)
        self._switch_lock = LeaseLock(client, switch_key, lease)

    def try_write(self, token: str) -> bool:
        return bool(self._write(keys=self.keys, args=[token, self.lease_ms, "enter"]))

    def renew_write(self, token: str) -> bool:
        return bool(self._write(keys=self.keys, args=[token, self.lease_ms, "renew"]))

    def end_write(self, token: str) -> None:
        self.client.zrem(self.keys[0], token)

    def try_switch(self, token: str) -> int:
        """0: another switch holds it; 1: reserved, writers still inside; 2: held."""
        return int(self._switch(keys=self.keys, args=[token, self.lease_ms]))

    def end_switch(self, token: str) -> None:
        self._switch_lock.release(token)

    @contextmanager
    def writing(self, *, timeout: float, busy: Callable[[], Exception]) -> Iterator[None]:
        """Hold the lock shared; raise ``busy()`` after ``timeout`` seconds of waiting."""
        token = secrets.token_hex(16)
        deadline = time.monotonic() + timeout
        while not self.try_write(token):
            if time.monotonic() > deadline:
                raise busy()
            time.sleep(0.1)
        renewer = Renewer(lambda: self.renew_write(token), self.lease, "a gallery write")
        try:
            yield
        finally:
            renewer.stop()
            self.end_write(token)

    @contextmanager
    def switching(
        self, *, cancelled: Callable[[], bool], waiting: Callable[[], None]
    ) -> Iterator[bool]:
        """Hold the lock exclusively once the writers inside have left (False: cancelled)."""
        token = secrets.token_hex(16)
        next_note = 0.0
        try:
            while (answer := self.try_switch(token)) != 2:
                if cancelled():
                    yield False
                    return
                if answer != 2 and time.monotonic() >= next_note:
                    waiting()
                    next_note = time.monotonic() + 1.0
                time.sleep(0.1)
            renewer = Renewer(lambda: self._switch_lock.renew(token), self.lease, "a switch")
            try:
                yield True
            finally:
                renewer.stop()
        finally:
            self.end_switch(token)
