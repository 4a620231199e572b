"""The Redis locks with leases (app/coordination/leases.py), against a real Redis server."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from app.coordination.leases import LeaseLock, ReadersWriterLock, Renewer
from app.coordination.redis_store import connect
from tests.helpers import wait_until
from tests.servers import redis_server  # noqa: F401  (fixture)

LEASE = 0.6  # seconds: short, so expiry is seen quickly; renewals come every 0.2 s


@pytest.fixture
def client(redis_server: str) -> Iterator[Any]:  # noqa: F811
    connection = connect(redis_server, timeout=5.0)
    yield connection
    connection.close()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def lock(client: Any, prefix: str) -> LeaseLock:
    return LeaseLock(client, f"{prefix}:lock", LEASE)


@pytest.fixture
def gallery_lock(client: Any, prefix: str) -> ReadersWriterLock:
    return ReadersWriterLock(client, f"{prefix}:writers", f"{prefix}:switch", LEASE)


def test_a_held_lease_lock_refuses_a_second_holder(lock: LeaseLock) -> None:
    assert lock.acquire('{"token": "a"}')
    assert not lock.acquire('{"token": "b"}')
    assert lock.holder() == '{"token": "a"}'


def test_a_lease_that_is_not_renewed_lapses_and_frees_the_lock(lock: LeaseLock) -> None:
    assert lock.acquire("a")
    wait_until(lambda: lock.acquire("b"), 10 * LEASE, "the lease to lapse")
    assert lock.holder() == "b"
    assert not lock.renew("a"), "the lapsed holder must not get its lock back"


def test_a_renewer_keeps_the_lock_for_many_leases_and_stopping_it_lets_it_lapse(
    lock: LeaseLock, client: Any
) -> None:
    assert lock.acquire("a")
    renewer = Renewer(lambda: lock.renew("a"), LEASE, "test")
    try:
        renewals = 0
        while renewals < 5:  # each renewal puts the expiry back to a full lease
            wait_until(lambda: client.pttl(lock.key) > LEASE * 1000 * 0.9, 5, "a renewal")
            wait_until(lambda: client.pttl(lock.key) < LEASE * 1000 * 0.9, 5, "time to pass")
            renewals += 1
        assert lock.holder() == "a" and not lock.acquire("b")
    finally:
        renewer.stop()
    wait_until(lambda: lock.acquire("b"), 10 * LEASE, "the lease to lapse after stop")
    assert not renewer.lost


def test_only_the_holder_releases_the_lock(lock: LeaseLock) -> None:
    assert lock.acquire("a")
    assert not lock.release("b") and lock.holder() == "a"
    assert lock.release("a") and lock.holder() is None


def test_a_renewer_notices_when_its_lease_was_lost(lock: LeaseLock, client: Any) -> None:
    assert lock.acquire("a")
    renewer = Renewer(lambda: lock.renew("a"), LEASE, "test")
    client.set(lock.key, "someone else")
    wait_until(lambda: renewer.lost, 10 * LEASE, "the renewer to notice")
    renewer.stop()


def test_writers_share_the_gallery_lock(gallery_lock: ReadersWriterLock) -> None:
    assert gallery_lock.try_write("w1") and gallery_lock.try_write("w2")
    assert gallery_lock.try_switch("s") == 1, "writers inside: the switch must wait"


def test_a_waiting_switch_keeps_new_writers_out_and_takes_over_when_writers_leave(
    gallery_lock: ReadersWriterLock,
) -> None:
    assert gallery_lock.try_write("w1")
    assert gallery_lock.try_switch("s") == 1
    assert not gallery_lock.try_write("w2"), "a new writer entered while a switch waits"
    gallery_lock.end_write("w1")
    assert gallery_lock.try_switch("s") == 2
    assert gallery_lock.try_switch("other") == 0, "a second switch took a held lock"
    gallery_lock.end_switch("s")
    assert gallery_lock.try_write("w2")


def test_a_writer_that_died_without_leaving_lapses_after_its_lease(
    gallery_lock: ReadersWriterLock,
) -> None:
    assert gallery_lock.try_write("dead")
    assert gallery_lock.try_switch("s") == 1
    wait_until(lambda: gallery_lock.try_switch("s") == 2, 10 * LEASE, "the writer to lapse")


def test_a_switch_that_died_lapses_and_writers_enter_again(
    gallery_lock: ReadersWriterLock,
) -> None:
    assert gallery_lock.try_switch("dead") == 2
    assert not gallery_lock.try_write("w")
    wait_until(lambda: gallery_lock.try_write("w"), 10 * LEASE, "the switch to lapse")


def test_a_long_write_is_renewed_so_the_switch_waits_for_it(
    gallery_lock: ReadersWriterLock,
) -> None:
    inside, leave = threading.Event(), threading.Event()

    def write() -> None:
        with gallery_lock.writing(timeout=5, busy=lambda: RuntimeError("busy")):
            inside.set()
            leave.wait(30)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert inside.wait(10)
        until = time.monotonic() + 3 * LEASE  # three leases: unrenewed, it would lapse
        answers = set()
        while time.monotonic() < until:
            answers.add(gallery_lock.try_switch("s"))
            time.sleep(0.05)  # the poll interval
        assert answers == {1}, "the switch got in while the write was still inside"
    finally:
        leave.set()
        writer.join(10)
    wait_until(lambda: gallery_lock.try_switch("s") == 2, 5, "the switch after the write")


def test_a_writer_gives_up_with_the_busy_error_while_a_switch_holds_the_lock(
    gallery_lock: ReadersWriterLock,
) -> None:
    assert gallery_lock.try_switch("s") == 2
    renewer = Renewer(lambda: gallery_lock._switch_lock.renew("s"), LEASE, "switch")
    try:
        with pytest.raises(RuntimeError, match="busy"):
            with gallery_lock.writing(timeout=2 * LEASE, busy=lambda: RuntimeError("busy")):
                pass
    finally:
        renewer.stop()
