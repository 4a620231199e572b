"""Bucket events, syncs and sources on two web servers sharing one Redis (app/coordination/).

Each app has its own instance folder, as two hosts would; one Milvus, one S3 server,
one Redis, all real. Without Redis the SQLite queue, file locks and catalog stay as
they were.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from pathlib import Path

import pytest

from app.buckets.catalog import Catalog
from app.buckets.event_queue import CREATED, Event, EventQueue
from app.buckets.hooks import token_digest
from app.buckets.inplace import location_of
from app.coordination import coordination
from app.coordination.local import FileSyncLocks
from tests.admin_fixtures import log_in
from tests.bucket_data import jpeg, put, put_many
from tests.helpers import wait_until
from tests.servers import redis_server  # noqa: F401  (fixture)
from tests.test_buckets_hooks import TOKEN, minio_event, post

pytest_plugins = ["tests.bucket_fixtures", "tests.admin_fixtures"]

LEASE = 2.0


@pytest.fixture
def shared(admin_hash: str, redis_server: str) -> dict:  # noqa: F811
    return {
        "REDIS_URL": redis_server,
        "REDIS_PREFIX": f"t{uuid.uuid4().hex[:10]}",
        "ADMIN_PASSWORD_HASH": admin_hash,
        "REDIS_LEASE_SECONDS": LEASE,
        "S3_WEBHOOK_TOKEN": token_digest(TOKEN),
    }


@pytest.fixture
def hosts(bucket_app, bucket, shared: dict, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Hosts A and B of one gallery; s3://bucket/in/ registered once, on A."""
    a, b = (bucket_app(INSTANCE_PATH=str(tmp_path / name), **shared) for name in "ab")
    added = a.test_cli_runner().invoke(args=["gallery", "add", f"s3://{bucket}/in/"])
    assert added.exit_code == 0, added.output
    return a, b


def source_of(app, bucket: str):  # type: ignore[no-untyped-def]
    from app.buckets import service
    from app.buckets.location import parse

    with app.app_context():
        return service.catalog().get(service.gallery(), parse(f"s3://{bucket}/in/"))


def indexed_keys(app) -> set[str]:  # type: ignore[no-untyped-def]
    from app.extensions import vectors

    with app.app_context():
        return {location_of(r.metadata).key for r in vectors().iterate()}


def events(n: int) -> list[Event]:
    return [Event("photos", f"in/{i}.jpg", CREATED) for i in range(n)]


def test_without_redis_the_queue_locks_and_catalog_stay_in_the_instance_folder(app) -> None:  # type: ignore[no-untyped-def]
    queue = coordination(app).event_queue()
    assert isinstance(queue, EventQueue)
    assert queue.path.parent == Path(app.instance_path)
    locks = coordination(app).sync_locks()
    assert isinstance(locks, FileSyncLocks) and locks.root == Path(app.instance_path)
    catalog = coordination(app).catalog()
    assert isinstance(catalog, Catalog)
    assert catalog.path == Path(app.instance_path) / "buckets.sqlite"


def test_a_source_registered_on_a_is_listed_on_b_and_bs_webhook_indexes_it(
    hosts, s3, bucket
) -> None:  # type: ignore[no-untyped-def]
    a, b = hosts
    admin = b.test_client()
    log_in(admin)
    listed = admin.get("/admin/sources/status").get_json()["sources"]
    assert [s["location"] for s in listed] == [f"s3://{bucket}/in/"]
    assert f"s3://{bucket}/in/" in admin.get("/admin/sources/").get_data(as_text=True)
    assert not list(Path(b.instance_path).glob("buckets.sqlite"))

    put(s3, bucket, "in/new.jpg", jpeg(5))
    reply = post(b.test_client(), minio_event("created", bucket, "in/new.jpg"))
    assert reply.status_code == 202 and reply.get_json()["queued"] == 1
    wait_until(lambda: indexed_keys(a) == {"in/new.jpg"}, 120, "B to index A's source's object")
    assert source_of(a, bucket).indexed == source_of(b, bucket).indexed == 1


def test_a_sync_on_b_resumes_from_as_manifest_and_encodes_nothing_twice(
    hosts, s3, bucket, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from app.buckets import service
    from app.extensions import snapshot
    from app.model.encoder import Encoder

    a, b = hosts
    put_many(s3, bucket, ((f"in/{i:03d}.jpg", jpeg(i)) for i in range(40)))
    for app in hosts:  # each model's one-image size probe, before counting
        with app.app_context():
            assert snapshot().encoder.dim > 0
    encoded: list[int] = []
    real = Encoder.embed_prepared
    monkeypatch.setattr(
        Encoder, "embed_prepared", lambda self, px: encoded.append(len(px)) or real(self, px)
    )

    class Injected(Exception):
        pass

    def stop_after_16(report) -> None:  # type: ignore[no-untyped-def]
        if report.tally.added >= 16:
            raise Injected

    with a.app_context(), pytest.raises(Injected):
        service.syncer(source_of(a, bucket), chunk=8, after_chunk=stop_after_16).sync()
    assert sum(encoded) == 16 and source_of(b, bucket).checkpoint == "in/015.jpg"

    with b.app_context():
        report = service.syncer(source_of(b, bucket), chunk=8).sync()
    assert report.resumed_after == "in/015.jpg" and report.tally.added == 24
    assert sum(encoded) == 40 and len(indexed_keys(b)) == 40
    lines = [app.test_cli_runner().invoke(args=["gallery", "sources"]).output for app in hosts]
    assert lines[0] == lines[1] and "40 objects seen, 40 indexed, 0 failed" in lines[0]


def test_events_posted_to_both_servers_are_each_processed_exactly_once(
    hosts, s3, bucket, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from app.buckets import drain

    handled: list[tuple[str, int]] = []
    real = drain.process

    def counting(app, batch):  # type: ignore[no-untyped-def]
        handled.extend((app.instance_path, e.seq) for e in batch)
        real(app, batch)

    monkeypatch.setattr(drain, "process", counting)
    keys = {f"in/{i:02d}.jpg" for i in range(12)}
    for i, key in enumerate(sorted(keys)):
        put(s3, bucket, key, jpeg(i))
        reply = post(hosts[i % 2].test_client(), minio_event("created", bucket, key))
        assert reply.status_code == 202 and reply.get_json()["queued"] == 1

    queue = coordination(hosts[0]).event_queue()
    wait_until(
        lambda: queue.pending() == 0 and indexed_keys(hosts[1]) == keys,
        120,
        "both servers' events to be drained",
    )
    seqs = [seq for _, seq in handled]
    assert len(seqs) == len(keys) and len(set(seqs)) == len(keys)


def test_a_drainer_whose_lease_lapsed_has_its_events_taken_over(hosts) -> None:  # type: ignore[no-untyped-def]
    a, b = (coordination(app).event_queue() for app in hosts)
    assert a.push(events(3)) == 3
    dead = a.claim("host-a-died")
    assert len(dead) == 3 and b.claim("host-b") == []  # held while the lease runs

    taken = wait_until(lambda: b.claim("host-b"), LEASE * 5, "the lapsed claim to be taken")
    assert sorted(e.seq for e in taken) == sorted(e.seq for e in dead)
    a.done(dead)  # too late: no longer its claim, so the new holder's is kept
    assert b.pending() == 3
    b.done(taken)
    assert b.pending() == 0


def test_a_drainer_that_renews_keeps_its_events_past_the_first_lease(hosts) -> None:  # type: ignore[no-untyped-def]
    a, b = (coordination(app).event_queue() for app in hosts)
    a.push(events(2))
    held = a.claim("host-a")
    client = coordination(hosts[0]).client
    first_end = max(client.zscore(a.keys[1], str(e.seq)) for e in held)

    def server_ms() -> float:
        seconds, micros = client.time()
        return seconds * 1000 + micros / 1000

    with a.holding(held):
        wait_until(lambda: server_ms() > first_end + 200, LEASE * 5, "the first lease to end")
        assert b.claim("host-b") == []
    a.done(held)
    assert a.pending() == 0


def test_events_that_keep_failing_are_dropped_after_their_attempts(hosts) -> None:  # type: ignore[no-untyped-def]
    from app.buckets.event_queue import MAX_ATTEMPTS

    queue = coordination(hosts[0]).event_queue()
    queue.push(events(1))
    for _ in range(MAX_ATTEMPTS):
        claimed = queue.claim("host-a")
        assert len(claimed) == 1
        queue.retry_later(claimed)
    assert queue.pending() == 0 and queue.claim("host-a") == []


def test_a_sync_on_b_while_a_syncs_the_source_is_refused_naming_as_job(hosts, s3, bucket) -> None:  # type: ignore[no-untyped-def]
    from app.buckets import service

    a, b = hosts
    put(s3, bucket, "in/one.jpg", jpeg(1))
    syncing, finish = threading.Event(), threading.Event()

    def step(_) -> None:  # type: ignore[no-untyped-def]
        syncing.set()
        finish.wait(60)

    def sync_on_a() -> None:
        with a.app_context():
            service.syncer(source_of(a, bucket), on_step=step).sync()

    thread = threading.Thread(target=sync_on_a)
    thread.start()
    try:
        assert syncing.wait(60), "A's sync never started"
        refused = b.test_cli_runner().invoke(args=["gallery", "sync", f"s3://{bucket}/in/"])
        assert refused.exit_code == 1
        assert f"already running on {socket.gethostname()} (pid {os.getpid()}" in refused.output
        admin = b.test_client()
        log_in(admin)
        page = admin.post(f"/admin/sources/{source_of(b, bucket).id}/sync", follow_redirects=True)
        assert f"already running (on {socket.gethostname()}" in page.get_data(as_text=True)
    finally:
        finish.set()
        thread.join(60)
    done = b.test_cli_runner().invoke(args=["gallery", "sync", f"s3://{bucket}/in/"])
    assert done.exit_code == 0, done.output


def test_a_sync_lock_whose_host_died_lapses_within_the_lease(hosts, bucket) -> None:  # type: ignore[no-untyped-def]
    a, b = hosts
    locks = coordination(b).sync_locks()
    source = source_of(a, bucket)
    lock = coordination(a).sync_locks()._lock(source)
    assert lock.acquire(json.dumps({"token": "dead", "host": "host-a", "pid": 1, "started": 0}))
    assert "host-a (pid 1" in (locks.holder(source_of(b, bucket)) or "")

    wait_until(lambda: locks.holder(source_of(b, bucket)) is None, LEASE * 5, "the lease to end")
    done = b.test_cli_runner().invoke(args=["gallery", "sync", f"s3://{bucket}/in/"])
    assert done.exit_code == 0, done.output
