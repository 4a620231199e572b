"""Faults of the machine: a read-only or full data folder gives clear 503s, no corrupt state."""

from __future__ import annotations

import errno
import io
from pathlib import Path

import pytest

from app.exceptions import StorageUnavailable

pytest_plugins = ["tests.admin_fixtures"]


def upload(client, data: bytes, url: str = "/api/search"):  # type: ignore[no-untyped-def]
    return client.post(url, data={"image": (io.BytesIO(data), "q.jpg")},
                       content_type="multipart/form-data")


@pytest.fixture
def unwritable_instance(tmp_path: Path) -> Path:
    """An instance folder that cannot be created, even by root: its parent is a file."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    return blocker / "instance"


def test_an_unwritable_instance_folder_gives_clear_503s(
    make_app, unwritable_instance, photos
) -> None:
    client = make_app(INSTANCE_PATH=str(unwritable_instance), MILVUS_URI="").test_client()
    response = upload(client, photos["coffee"])
    assert response.status_code == 503
    assert "instance folder is writable" in response.get_json()["error"]["message"]
    health = client.get("/api/health")
    assert health.status_code == 503
    body = health.get_json()
    assert body["milvus"]["reachable"] is False and "error" not in body["model"]
    assert client.get("/").status_code == 200  # the page explains instead of failing
    login = client.get("/admin/login")
    assert login.status_code == 503 and b"cannot write" in login.data


def test_a_full_disk_while_storing_an_upload_is_a_503_and_leaves_nothing_half_written(
    admin_client, admin_app, photos, monkeypatch
) -> None:
    app = admin_app
    from app.extensions import images
    from app.gallery.storage import LocalStore

    real_replace = __import__("os").replace

    def disk_full(src, dst):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr("app.files.os.replace", disk_full)
    response = admin_client.post(
        "/admin/gallery/upload", data={"files": [(io.BytesIO(photos["rocket"]), "rocket.jpg")]},
        content_type="multipart/form-data")
    monkeypatch.setattr("app.files.os.replace", real_replace)
    assert response.status_code == 503
    text = response.get_data(as_text=True)
    assert "is not writable" in text and "No space left on device" in text
    with app.app_context():
        store = images()
        assert isinstance(store, LocalStore)
        leftovers = [p for p in Path(store.root).rglob("*") if p.is_file()]
        assert leftovers == []  # no temporary or partial file stayed behind
    result = app.test_cli_runner().invoke(args=["gallery", "check"])
    assert result.exit_code == 0, result.output


def test_the_local_store_reports_an_unwritable_folder(unwritable_instance) -> None:
    from app.gallery.keys import original_name
    from app.gallery.storage import LocalStore

    store = LocalStore(unwritable_instance / "images")
    with pytest.raises(StorageUnavailable, match="not writable|cannot"):
        store.put(original_name("a" * 64 + ".jpg"), b"x", "image/jpeg")
