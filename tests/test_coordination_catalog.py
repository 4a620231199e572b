"""The sources catalog behaves the same in SQLite (one host) and in Redis (several).

Each behaviour runs against both: ``instance/buckets.sqlite`` and a real Redis
(app/coordination/redis_catalog.py), so the rest of the bucket feature cannot tell
them apart. Redis-only checks (validation, two writers) follow.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from app.buckets.catalog import ADDED, DUPLICATE, FAILED, Catalog, Known
from app.buckets.location import Location
from app.coordination.redis_catalog import RedisCatalog
from app.coordination.redis_store import RedisCoordination, connect
from app.exceptions import BadRequest, NotFound
from tests.servers import redis_server  # noqa: F401  (fixture)

HERE = Location("photos", "in/")
CID = "a" * 64


def redis_catalog(url: str, prefix: str) -> RedisCatalog:
    return RedisCoordination(connect(url, 5.0), prefix=prefix, lease=5.0).catalog()


@pytest.fixture(params=["sqlite", "redis"])
def catalog(request, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return Catalog.in_folder(tmp_path)
    return redis_catalog(request.getfixturevalue("redis_server"), f"c{uuid.uuid4().hex[:10]}")


@pytest.fixture
def two_hosts(redis_server: str):  # type: ignore[no-untyped-def]  # noqa: F811
    prefix = f"c{uuid.uuid4().hex[:10]}"
    return redis_catalog(redis_server, prefix), redis_catalog(redis_server, prefix)


def entry(key: str, status: str = ADDED, cid: str = CID) -> Known:
    return Known(key, f"etag-{key}", 10, cid if status != FAILED else "", status)


def test_a_source_is_registered_once_and_updated_when_added_again(catalog) -> None:  # type: ignore[no-untyped-def]
    first = catalog.add("g", HERE, label_rule="folder")
    again = catalog.add("g", HERE, endpoint="other", label_rule="csv")
    assert again.id == first.id and (again.endpoint, again.label_rule) == ("other", "csv")
    assert catalog.get("g", HERE) == catalog.by_id(first.id) == again
    assert catalog.add("h", HERE).id != first.id
    assert [s.gallery for s in catalog.sources()] == ["g", "h"]
    assert [s.id for s in catalog.sources("g")] == [first.id]
    assert [s.id for s in catalog.containing("photos", "in/a/b.jpg")] == [first.id, first.id + 1]
    assert catalog.containing("photos", "out/b.jpg") == []


def test_an_unknown_source_says_how_to_add_it(catalog) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFound, match="gallery add s3://photos/in/"):
        catalog.get("g", HERE)
    with pytest.raises(NotFound):
        catalog.by_id(999)


def test_update_sets_progress_fields_and_refuses_the_identity(catalog) -> None:  # type: ignore[no-untyped-def]
    source = catalog.add("g", HERE)
    catalog.update(source.id, phase="syncing", done=7, message="half", last_sync=12.5)
    now = catalog.by_id(source.id)
    assert (now.phase, now.done, now.message, now.last_sync) == ("syncing", 7, "half", 12.5)
    with pytest.raises(ValueError):
        catalog.update(source.id, bucket="elsewhere")


def test_the_manifest_pages_in_byte_order_after_a_key(catalog) -> None:  # type: ignore[no-untyped-def]
    source = catalog.add("g", HERE)
    keys = ["in/b.jpg", "in/a.jpg", "in/Z.jpg", "in/é.jpg", "in/a/1.jpg", "in/c.jpg"]
    catalog.record(source.id, [entry(k) for k in keys])
    assert [k.key for k in catalog.iter_known(source.id, page=2)] == sorted(keys, key=str.encode)
    assert [k.key for k in catalog.known(source.id, after="in/a.jpg", limit=2)] == [
        "in/a/1.jpg",
        "in/b.jpg",
    ]
    assert catalog.known_one(source.id, "in/é.jpg") == entry("in/é.jpg")
    assert catalog.known_one(source.id, "in/none.jpg") is None


def test_recording_moves_the_checkpoint_and_recount_follows_every_change(catalog) -> None:  # type: ignore[no-untyped-def]
    source = catalog.add("g", HERE)
    catalog.record(
        source.id,
        [entry("in/1.jpg"), entry("in/2.jpg", DUPLICATE), entry("in/3.jpg", FAILED)],
        checkpoint="in/3.jpg",
        done=3,
    )
    counted = catalog.recount(source.id)
    assert (counted.checkpoint, counted.done) == ("in/3.jpg", 3)
    assert (counted.seen, counted.indexed, counted.failed) == (3, 2, 1)
    catalog.record(source.id, [entry("in/3.jpg")])  # the failed one indexed on a retry
    catalog.forget(source.id, ["in/1.jpg", "in/gone.jpg"])
    counted = catalog.recount(source.id)
    assert (counted.seen, counted.indexed, counted.failed) == (2, 2, 0)
    assert counted.checkpoint == "in/3.jpg"  # recorded without one: left alone


def test_csv_labels_are_replaced_as_a_whole(catalog) -> None:  # type: ignore[no-untyped-def]
    source = catalog.add("g", HERE)
    assert catalog.set_labels(source.id, [("in/1.jpg", "cat"), ("in/2.jpg", "dog")]) == 2
    assert catalog.set_labels(source.id, [("in/2.jpg", "wolf")]) == 1
    assert catalog.labels_for(source.id, ["in/1.jpg", "in/2.jpg"]) == {"in/2.jpg": "wolf"}
    assert catalog.set_labels(source.id, []) == 0
    assert catalog.labels_for(source.id, ["in/2.jpg"]) == {}


def test_another_holder_of_the_content_is_found_in_the_same_gallery_only(catalog) -> None:  # type: ignore[no-untyped-def]
    one = catalog.add("g", HERE)
    two = catalog.add("g", Location("photos", "other/"))
    elsewhere = catalog.add("h", Location("photos", "third/"))
    catalog.record(one.id, [entry("in/x.jpg")])
    catalog.record(elsewhere.id, [entry("third/x.jpg")])
    assert catalog.other_holder("g", CID, besides=(one.id, "in/x.jpg")) is None
    catalog.record(two.id, [entry("other/x.jpg", DUPLICATE), entry("other/y.jpg", FAILED)])
    holder, copy = catalog.other_holder("g", CID, besides=(one.id, "in/x.jpg"))
    assert (holder.id, copy.key) == (two.id, "other/x.jpg")
    catalog.forget(two.id, ["other/x.jpg"])
    assert catalog.other_holder("g", CID, besides=(one.id, "in/x.jpg")) is None


def test_redis_refuses_values_it_could_not_read_back(two_hosts) -> None:  # type: ignore[no-untyped-def]
    catalog, _ = two_hosts
    source = catalog.add("g", HERE)
    for bad in (entry("in/\0.jpg"), entry("in/" + "x" * 1100), entry("in/a.jpg", cid="../x")):
        with pytest.raises((BadRequest, ValueError)):
            catalog.record(source.id, [bad])
    with pytest.raises(ValueError):
        catalog.record(source.id, [Known("in/a.jpg", "e", -1, "", FAILED)])
    with pytest.raises(ValueError):
        catalog.update(source.id, done="many")
    with pytest.raises(BadRequest):
        catalog.set_labels(source.id, [("in/a.jpg", "x\0y")])
    assert catalog.known(source.id) == []


def test_two_hosts_registering_the_same_source_at_once_get_one_source(two_hosts) -> None:  # type: ignore[no-untyped-def]
    start = threading.Barrier(8)
    ids: list[int] = []

    def register(host: RedisCatalog) -> None:
        start.wait(10)
        ids.append(host.add("g", HERE).id)

    threads = [threading.Thread(target=register, args=(two_hosts[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(set(ids)) == 1 and len(ids) == 8
    assert [s.id for s in two_hosts[1].sources()] == ids[:1]


def test_two_hosts_recording_entries_keep_the_counts_exact(two_hosts) -> None:  # type: ignore[no-untyped-def]
    a, b = two_hosts
    source = a.add("g", HERE)

    def record(host: RedisCatalog, start: int) -> None:
        for i in range(start, 200, 2):
            host.record(source.id, [entry(f"in/{i:03d}.jpg", FAILED if i % 10 == 0 else ADDED)])

    threads = [threading.Thread(target=record, args=(host, n)) for n, host in enumerate((a, b))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    b.forget(source.id, [f"in/{i:03d}.jpg" for i in range(0, 200, 4)])
    counted = a.recount(source.id)
    assert (counted.seen, counted.indexed, counted.failed) == (150, 140, 10)
    assert b.by_id(source.id) == counted
