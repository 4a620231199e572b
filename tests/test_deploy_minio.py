"""The app on its MinIO backend: a real S3 server on loopback (tests/s3server.py).

The app is configured as in compose (STORAGE=s3://bucket, S3_ENDPOINT and keys),
the gallery is added with the CLI, and originals and thumbnails are served by
the app from the bucket (/images/<key>, /thumbs/<key>). The server is
file-backed (s3rver) where installed, so the restart is a real one.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from tests.s3server import S3Server
from tests.test_search import add_gallery, upload

BUCKET = "lookalike-test"


@pytest.fixture
def s3_app(make_app, own_s3_server: S3Server):  # type: ignore[no-untyped-def]
    return make_app(
        STORAGE=f"s3://{BUCKET}/gallery", S3_ENDPOINT=f"http://{own_s3_server.endpoint}",
        S3_ACCESS_KEY=own_s3_server.access_key, S3_SECRET_KEY=own_s3_server.secret_key,
        STORAGE_TIMEOUT=1.0,
    )


def bucket_names(server: S3Server) -> set[str]:
    from minio import Minio

    client = Minio(server.endpoint, access_key=server.access_key,
                   secret_key=server.secret_key, secure=False)
    if not client.bucket_exists(BUCKET):
        return set()
    return {o.object_name for o in client.list_objects(BUCKET, recursive=True)}


@pytest.mark.slow
def test_cli_ingest_stores_originals_and_thumbnails_in_the_bucket(
    s3_app, own_s3_server: S3Server, gallery_dir: Path, photos  # type: ignore[no-untyped-def]
) -> None:
    assert bucket_names(own_s3_server) == set()  # the app creates its bucket
    add_gallery(s3_app.test_cli_runner(), gallery_dir)
    names = bucket_names(own_s3_server)
    assert len([n for n in names if n.startswith("gallery/images/")]) == len(photos)
    assert len([n for n in names if n.startswith("gallery/thumbs/")]) == len(photos)


@pytest.mark.slow
def test_search_results_are_served_from_the_bucket(s3_app, gallery_dir: Path, photos) -> None:  # type: ignore[no-untyped-def]
    add_gallery(s3_app.test_cli_runner(), gallery_dir)
    client = s3_app.test_client()
    top = upload(client, photos["chelsea"], k=1).get_json()["results"][0]
    original = client.get(top["image_url"])
    assert original.status_code == 200 and original.data == photos["chelsea"]
    assert "immutable" in original.headers["Cache-Control"]
    thumb = client.get(top["thumb_url"])
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.data)).size) < 1024
    health = client.get("/api/health").get_json()
    assert health["storage"] == {"backend": "s3", "reachable": True}


@pytest.mark.slow
def test_an_object_missing_from_the_bucket_is_a_404(s3_app) -> None:  # type: ignore[no-untyped-def]
    client = s3_app.test_client()
    missing = "0" * 64
    assert client.get(f"/images/{missing}.jpg").status_code == 404
    assert client.get(f"/thumbs/{missing}.jpg").status_code == 404


@pytest.mark.slow
def test_the_server_down_is_a_503_and_the_app_recovers_after_a_restart(
    s3_app, own_s3_server: S3Server, gallery_dir: Path, photos  # type: ignore[no-untyped-def]
) -> None:
    add_gallery(s3_app.test_cli_runner(), gallery_dir)
    client = s3_app.test_client()
    top = upload(client, photos["astronaut"], k=1).get_json()["results"][0]
    own_s3_server.stop()
    down = client.get(top["thumb_url"])
    assert down.status_code == 503
    assert client.get("/api/health").status_code == 503
    # Search needs Milvus and the model, not the store: it still answers.
    still = upload(client, photos["astronaut"], k=1)
    assert still.status_code == 200 and still.get_json()["results"][0]["key"] == top["key"]
    page = client.post("/search", data={"image": (io.BytesIO(photos["rocket"]), "r.jpg")},
                       content_type="multipart/form-data")
    assert page.status_code == 200 and b'class="card"' in page.data
    own_s3_server.start()  # same port, same data folder
    back = client.get(top["image_url"])
    assert back.status_code == 200 and back.data == photos["astronaut"]
    assert client.get("/api/health").status_code == 200
