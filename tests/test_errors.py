"""Every error path: a clear 4xx/503 as JSON under /api/ and as a page elsewhere."""

from __future__ import annotations

import io
import socket

import pytest

from app.vectors.processes import free_port as _free_port


def upload(client, data: bytes, url: str = "/api/search", **fields):  # type: ignore[no-untyped-def]
    return client.post(url, data={"image": (io.BytesIO(data), "q.jpg"), **fields},
                       content_type="multipart/form-data")


def test_not_an_image_is_a_400_with_a_message(client) -> None:
    response = upload(client, b"plain text, not a picture")
    assert response.status_code == 400
    assert "not an image we can read" in response.get_json()["error"]["message"]


def test_not_an_image_on_the_page_is_a_400_page(client) -> None:
    response = upload(client, b"%PDF-1.4", url="/search")
    assert response.status_code == 400 and b"not an image we can read" in response.data
    assert response.mimetype == "text/html"


def test_a_truncated_image_is_a_400(client, photos) -> None:
    response = upload(client, photos["coffee"][:2000])
    assert response.status_code == 400
    assert "truncated or corrupt" in response.get_json()["error"]["message"]


def test_an_empty_file_is_a_400(client) -> None:
    assert upload(client, b"").status_code == 400


def test_a_missing_field_is_a_400(client) -> None:
    assert client.post("/api/search", data={}).status_code == 400
    assert client.post("/search", data={}).status_code == 400


def test_two_files_are_a_400(client, photos) -> None:
    response = client.post("/api/search", data={"image": [(io.BytesIO(photos["coffee"]), "a.jpg"),
                                                          (io.BytesIO(photos["rocket"]), "b.jpg")]})
    assert response.status_code == 400


def test_a_too_large_upload_is_a_413(make_app, photos) -> None:
    client = make_app(MAX_CONTENT_LENGTH=10_000).test_client()
    response = upload(client, photos["astronaut"])
    assert response.status_code == 413
    assert "limit" in response.get_json()["error"]["message"]
    assert upload(client, photos["astronaut"], url="/search").status_code == 413


@pytest.mark.parametrize("k", ["0", "-3", "101", "ten", "1e9"])
def test_a_bad_k_is_a_400(client, photos, k: str) -> None:
    response = upload(client, photos["coffee"], k=k)
    assert response.status_code == 400 and "k must be" in response.get_json()["error"]["message"]


def test_an_unknown_key_is_a_404(client) -> None:
    assert client.get("/api/search?key=" + "a" * 64 + ".jpg").status_code == 404
    assert client.get("/thumbs/" + "a" * 64 + ".jpg").status_code == 404
    assert client.get("/images/" + "b" * 64 + ".png").status_code == 404


@pytest.mark.parametrize("key", ["../../etc/passwd", "x.jpg", "a" * 64 + ".svg", "%00", "é" * 64])
def test_a_malformed_key_is_a_404(client, key: str) -> None:
    assert client.get(f"/images/{key}").status_code == 404
    assert client.get(f"/api/search?key={key}").status_code == 404


def test_an_unknown_page_is_a_404_page(client) -> None:
    response = client.get("/nowhere")
    assert response.status_code == 404 and response.mimetype == "text/html"


def test_milvus_down_is_a_503_and_the_app_recovers(make_app, photos, tmp_path) -> None:
    port = _free_port()
    client = make_app(MILVUS_URI=f"http://127.0.0.1:{port}", MILVUS_TIMEOUT=3).test_client()
    response = upload(client, photos["coffee"])
    assert response.status_code == 503
    assert "unreachable" in response.get_json()["error"]["message"]
    assert client.get("/api/health").status_code == 503
    assert client.get("/").status_code == 200  # the page still renders, with a notice
    server = _start_on(port, tmp_path)
    try:
        assert upload(client, photos["coffee"]).status_code == 200
        assert client.get("/api/health").status_code == 200
    finally:
        server.terminate()
        server.wait(10)


def _start_on(port: int, tmp_path):  # type: ignore[no-untyped-def]
    import subprocess
    import sys
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(tmp_path / "m.db"),
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return process
        except OSError:
            time.sleep(0.1)  # the poll interval of a wait with a deadline
    process.kill()
    raise RuntimeError("Milvus Lite did not start")


def test_storage_down_is_a_503_on_thumbs_and_health(make_app) -> None:
    app = make_app(STORAGE="s3://gallery", S3_ENDPOINT=f"127.0.0.1:{_free_port()}",
                   S3_ACCESS_KEY="k", S3_SECRET_KEY="s", STORAGE_TIMEOUT=1)
    client = app.test_client()
    response = client.get("/thumbs/" + "a" * 64 + ".jpg")
    assert response.status_code == 503
    assert "unreachable" in response.get_data(as_text=True)
    health = client.get("/api/health")
    assert health.status_code == 503 and health.get_json()["storage"]["reachable"] is False


def test_a_collection_of_a_model_that_cannot_be_loaded_is_refused_clearly(
    make_app, tmp_path, gallery_dir
) -> None:
    # A collection of another, loadable model is served with that model (see
    # tests/test_reindex.py); one whose model is gone cannot be searched.
    import shutil

    from transformers import Dinov2Config, Dinov2Model

    gone = tmp_path / "gone-model"
    config = Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=64, patch_size=14, image_size=56)
    Dinov2Model(config).save_pretrained(gone)
    make_app(MODEL=str(gone)).test_cli_runner().invoke(args=["gallery", "add", str(gallery_dir)])
    shutil.rmtree(gone)
    client = make_app().test_client()
    response = client.get("/api/search?key=" + "a" * 64 + ".jpg")
    assert response.status_code == 503
    assert "built with the model" in response.get_json()["error"]["message"]


def test_csrf_is_enforced_outside_tests(make_app, photos) -> None:
    client = make_app(WTF_CSRF_ENABLED=True, TESTING=False).test_client()
    response = upload(client, photos["coffee"], url="/search")
    assert response.status_code == 400 and b"Form expired" in response.data
    assert upload(client, photos["coffee"]).status_code == 200  # the JSON API is stateless
