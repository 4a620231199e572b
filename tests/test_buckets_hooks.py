"""Bucket events on ``POST /api/hooks/s3``: MinIO's format, the token, a burst of 1,000."""

from __future__ import annotations

import io
import json
import threading
from urllib.parse import quote_plus

import pytest

from app.buckets.hooks import token_digest
from app.buckets.inplace import location_of
from tests.bucket_data import jpeg, put
from tests.helpers import wait_until

pytest_plugins = ["tests.bucket_fixtures"]

TOKEN = "webhook-secret-for-tests"


def minio_event(kind: str, bucket: str, key: str, *, etag: str = "", size: int = 0) -> dict:
    """One notification as MinIO's webhook target posts it (docs: bucket notifications)."""
    name = "s3:ObjectCreated:Put" if kind == "created" else "s3:ObjectRemoved:Delete"
    obj = {"key": quote_plus(key), "sequencer": "17A9C6A4B9E7C3F1"}
    if kind == "created":
        obj.update(
            size=size,
            eTag=etag,
            contentType="image/jpeg",
            userMetadata={"content-type": "image/jpeg"},
        )
    return {
        "EventName": name,
        "Key": f"{bucket}/{key}",
        "Records": [
            {
                "eventVersion": "2.0",
                "eventSource": "minio:s3",
                "awsRegion": "",
                "eventTime": "2026-12-02T17:00:00.000Z",
                "eventName": name,
                "userIdentity": {"principalId": "minioadmin"},
                "requestParameters": {
                    "principalId": "minioadmin",
                    "region": "",
                    "sourceIPAddress": "172.18.0.1",
                },
                "responseElements": {
                    "x-amz-request-id": "17A9C6A4B9E7C3F1",
                    "x-minio-origin-endpoint": "http://172.18.0.2:9000",
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "Config",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "minioadmin"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": obj,
                },
                "source": {
                    "host": "172.18.0.1",
                    "port": "",
                    "userAgent": "MinIO (linux; amd64) minio-go/v7.0.70",
                },
            }
        ],
    }


def post(client, body, token: str | None = TOKEN):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.post(
        "/api/hooks/s3", data=json.dumps(body), headers=headers, content_type="application/json"
    )


def rows(app):  # type: ignore[no-untyped-def]
    from app.extensions import vectors

    with app.app_context():
        return list(vectors().iterate())


def pending(app) -> int:  # type: ignore[no-untyped-def]
    from app.buckets import service

    with app.app_context():
        return service.event_queue().pending()


@pytest.fixture
def hooked(bucket_app, bucket):  # type: ignore[no-untyped-def]
    """An app with the hook on (only the token's hash configured) and s3://bucket/in/ added."""
    app = bucket_app(S3_WEBHOOK_TOKEN=token_digest(TOKEN))
    result = app.test_cli_runner().invoke(
        args=["gallery", "add", f"s3://{bucket}/in/", "--label-from-folder"]
    )
    assert result.exit_code == 0, result.output
    return app


def drained_to(app, keys: set[str]) -> bool:  # type: ignore[no-untyped-def]
    return pending(app) == 0 and {location_of(r.metadata).key for r in rows(app)} == keys


def test_created_and_removed_events_add_and_remove_images(hooked, s3, bucket) -> None:  # type: ignore[no-untyped-def]
    client = hooked.test_client()
    for key, seed in (("in/a/one.jpg", 1), ("in/b/two photo.jpg", 2)):
        put(s3, bucket, key, jpeg(seed))
        reply = post(client, minio_event("created", bucket, key))
        assert reply.status_code == 202 and reply.get_json() == {"queued": 1, "ignored": 0}
    wait_until(
        lambda: drained_to(hooked, {"in/a/one.jpg", "in/b/two photo.jpg"}),
        120,
        "the created objects to be indexed",
    )
    assert {r.label for r in rows(hooked)} == {"a", "b"}

    s3.remove_object(bucket, "in/a/one.jpg")
    assert post(client, minio_event("removed", bucket, "in/a/one.jpg")).status_code == 202
    wait_until(
        lambda: drained_to(hooked, {"in/b/two photo.jpg"}), 120, "the removed object's row to go"
    )


def test_events_outside_every_source_are_ignored(hooked, s3, bucket) -> None:  # type: ignore[no-untyped-def]
    put(s3, bucket, "elsewhere/x.jpg", jpeg(3))
    reply = post(hooked.test_client(), minio_event("created", bucket, "elsewhere/x.jpg"))
    assert reply.status_code == 202 and reply.get_json() == {"queued": 0, "ignored": 1}
    assert pending(hooked) == 0


@pytest.mark.parametrize("token", [None, "", "wrong", TOKEN + "x", token_digest(TOKEN)])
def test_a_missing_or_wrong_token_is_refused(hooked, bucket, token) -> None:  # type: ignore[no-untyped-def]
    reply = post(hooked.test_client(), minio_event("created", bucket, "in/a.jpg"), token)
    assert reply.status_code == 401 and pending(hooked) == 0


def test_the_hook_is_off_without_a_configured_token(bucket_app, bucket) -> None:  # type: ignore[no-untyped-def]
    reply = post(bucket_app().test_client(), minio_event("created", bucket, "in/a.jpg"))
    assert reply.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        [],
        {"Records": "x"},
        {"Records": [1]},
        {"Records": [{"eventName": 3}]},
        {"Records": [{"eventName": "s3:ObjectCreated:Put", "s3": {}}]},
        {
            "Records": [
                {
                    "eventName": "s3:ObjectCreated:Put",
                    "s3": {"bucket": {"name": "BAD_bucket"}, "object": {"key": "a.jpg"}},
                }
            ]
        },
        {
            "Records": [
                {
                    "eventName": "s3:ObjectCreated:Put",
                    "s3": {"bucket": {"name": "photos"}, "object": {"key": "a%0A.jpg"}},
                }
            ]
        },
    ],
)
def test_a_malformed_body_is_a_400_and_queues_nothing(hooked, body) -> None:  # type: ignore[no-untyped-def]
    raw = body if isinstance(body, str) else json.dumps(body)
    reply = hooked.test_client().post(
        "/api/hooks/s3",
        data=raw,
        content_type="application/json",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert reply.status_code == 400 and reply.get_json()["error"]["message"]
    assert pending(hooked) == 0


def test_a_burst_of_1000_events_is_absorbed_while_searches_go_on(hooked, s3, bucket) -> None:  # type: ignore[no-untyped-def]
    keys = [f"in/{'x' if i % 2 else 'y'}/{i:03d}.jpg" for i in range(100)]
    for i, key in enumerate(keys):
        put(s3, bucket, key, jpeg(5000 + i))
    removed = set(keys[::4])
    events = [minio_event("created", bucket, k) for k in keys]
    for key in removed:
        s3.remove_object(bucket, key)
        events.append(minio_event("removed", bucket, key))
    while len(events) < 1000:  # repeats, as MinIO may deliver them, in any order
        key = keys[(len(events) * 7) % len(keys)]
        events.append(minio_event("removed" if key in removed else "created", bucket, key))

    stop, failures, searches = threading.Event(), [], [0]

    def search() -> None:
        client = hooked.test_client()
        while not stop.is_set():
            reply = client.post("/api/search", data={"image": (io.BytesIO(jpeg(5001)), "q.jpg")})
            searches[0] += 1
            if reply.status_code != 200:
                failures.append(reply.status_code)

    searcher = threading.Thread(target=search)
    searcher.start()
    try:
        client = hooked.test_client()
        statuses = [post(client, event).status_code for event in events]
        assert statuses == [202] * 1000
        wanted = set(keys) - removed
        wait_until(lambda: drained_to(hooked, wanted), 600, "the queue to drain to the bucket")
    finally:
        stop.set()
        searcher.join()
    assert searches[0] > 0 and failures == []
    assert {r.label for r in rows(hooked)} == {"x", "y"}


@pytest.mark.parametrize("token", ["dev-only-webhook-token", "short"])
def test_production_refuses_a_guessable_webhook_token(make_app, token: str) -> None:  # type: ignore[no-untyped-def]
    from werkzeug.security import generate_password_hash

    from app.web.security import InsecureConfig

    with pytest.raises(InsecureConfig, match="S3_WEBHOOK_TOKEN"):
        make_app(
            PRODUCTION=True,
            SECRET_KEY="k" * 40,
            S3_WEBHOOK_TOKEN=token,
            ADMIN_PASSWORD_HASH=generate_password_hash("x" * 20),
        )


def rows_of(app, gallery: str):  # type: ignore[no-untyped-def]
    from app.extensions import vectors
    from app.galleries.current import use

    with app.app_context():
        use(gallery)
        return list(vectors().iterate())


def test_events_reach_the_gallery_whose_source_holds_the_object(hooked, s3, bucket) -> None:  # type: ignore[no-untyped-def]
    runner = hooked.test_cli_runner()
    for args in (["gallery", "create", "second"],
                 ["gallery", "add", f"s3://{bucket}/other/", "--gallery", "second"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, result.output
    client = hooked.test_client()
    for key, seed in (("in/a/mine.jpg", 11), ("other/theirs.jpg", 12)):
        put(s3, bucket, key, jpeg(seed))
        assert post(client, minio_event("created", bucket, key)).status_code == 202

    def placed() -> bool:
        default = {location_of(r.metadata).key for r in rows(hooked)}
        second = {location_of(r.metadata).key for r in rows_of(hooked, "second")}
        return pending(hooked) == 0 and default == {"in/a/mine.jpg"} and second == {
            "other/theirs.jpg"}

    wait_until(placed, 120, "each object to be indexed into its source's gallery")
