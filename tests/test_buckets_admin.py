"""The admin's Sources page: login required, add a source, sync it as a background process."""

from __future__ import annotations

from app.buckets.catalog import SourceRecord
from tests.admin_fixtures import log_in
from tests.bucket_data import jpeg, put
from tests.helpers import wait_until

pytest_plugins = ["tests.admin_fixtures", "tests.bucket_fixtures"]


def sources(client) -> list[dict]:  # type: ignore[no-untyped-def]
    reply = client.get("/admin/sources/status")
    assert reply.status_code == 200
    return reply.get_json()["sources"]


def synced(client, expected_seen: int):  # type: ignore[no-untyped-def]
    found = sources(client)
    return (
        found
        if found and found[0]["phase"] == "done" and found[0]["seen"] == expected_seen
        else None
    )


def test_the_sources_page_requires_a_login(bucket_app, admin_hash) -> None:  # type: ignore[no-untyped-def]
    client = bucket_app(ADMIN_PASSWORD_HASH=admin_hash).test_client()
    assert client.get("/admin/sources/").status_code == 302
    assert client.get("/admin/sources/status").status_code == 401
    assert client.post("/admin/sources/", data={"location": "s3://x/"}).status_code == 302


def test_a_source_added_on_the_page_is_synced_in_the_background(
    bucket_app,
    admin_hash,
    s3,
    bucket,  # type: ignore[no-untyped-def]
) -> None:
    for i in range(3):
        put(s3, bucket, f"shop/{'a' if i else 'b'}/{i}.jpg", jpeg(i))
    app = bucket_app(ADMIN_PASSWORD_HASH=admin_hash)
    client = app.test_client()
    log_in(client)
    page = client.get("/admin/sources/").get_data(as_text=True)
    assert "Add a source" in page and "No sources yet" in page
    reply = client.post(
        "/admin/sources/",
        data={"location": f"s3://{bucket}/shop", "label_rule": "folder", "endpoint": ""},
    )
    assert reply.status_code == 303
    [source] = wait_until(lambda: synced(client, 3), 180, "the background sync")
    assert (source["indexed"], source["failed"]) == (3, 0) and source["last_sync"]
    assert f"s3://{bucket}/shop/" in client.get("/admin/sources/").get_data(as_text=True)

    put(s3, bucket, "shop/a/new.jpg", jpeg(10))
    assert client.post(f"/admin/sources/{source['id']}/sync").status_code == 303
    [source] = wait_until(lambda: synced(client, 4), 180, "the second background sync")
    assert source["indexed"] == 4
    from app.extensions import vectors

    with app.app_context():
        assert sorted(e.label for e in vectors().iterate()) == ["a", "a", "a", "b"]


def test_a_bad_location_is_explained_and_nothing_is_added(bucket_app, admin_hash) -> None:  # type: ignore[no-untyped-def]
    client = bucket_app(ADMIN_PASSWORD_HASH=admin_hash).test_client()
    log_in(client)
    reply = client.post(
        "/admin/sources/", data={"location": "s3://Bad_Bucket/x"}, follow_redirects=True
    )
    assert "not a valid S3 bucket name" in reply.get_data(as_text=True)
    assert sources(client) == []


def test_source_records_expose_their_location() -> None:
    assert str(SourceRecord(1, "g", "photos", "a/").location) == "s3://photos/a/"
