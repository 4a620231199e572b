"""The image store, on a local folder and on a real S3 server (see tests/s3server.py).

The behaviour tests run once per backend; fault tests stop and restart a server
of their own and are marked ``slow``.
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest

from app.exceptions import BadRequest, NotFound, StorageUnavailable
from app.gallery.imaging import content_hash
from app.gallery.keys import original_name, thumb_name
from app.gallery.storage import (
    ImageStore,
    LocalStore,
    MinioStore,
    connect_minio,
    open_store,
)
from tests.s3server import S3Server

PNG = b"\x89PNG\r\n\x1a\n not really a png, the store does not care"
WEBP = b"RIFF\x00\x00\x00\x00WEBP thumbnail bytes"
KEY = f"{content_hash(PNG)}.png"
ORIGINAL = original_name(KEY)
THUMB = thumb_name(KEY)
BAD_NAMES = [
    "../x",
    "images/../../etc/passwd",
    "images/abc.jpg",
    f"images/{KEY}\x00.png",
    f"/images/{KEY}",
    "/etc/passwd",
    f"images/{KEY}\n",
    f"images/{KEY.upper()}",
    f"thumbs/{KEY}",  # thumbnails are .jpg
    f"thumbs/{KEY.removesuffix('.png')}.webp",
    "images/" + "a" * 4096 + ".png",
    "",
]


def s3_store_for(server: S3Server, spec: str, *, timeout: float = 2.0) -> MinioStore:
    store = open_store(
        spec,
        instance_path=Path("/nonexistent"),
        endpoint=server.endpoint,
        access_key=server.access_key,
        secret_key=server.secret_key,
        timeout=timeout,
    )
    assert isinstance(store, MinioStore)
    return store


def unique_bucket() -> str:
    return f"test-{uuid.uuid4().hex[:16]}"


def stat_content_type(store: MinioStore, name: str) -> str:
    return store.client.stat_object(store.bucket, store.prefix + name).content_type


@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture
def s3_store(s3_server: S3Server) -> MinioStore:  # noqa: F811
    return s3_store_for(s3_server, f"s3://{unique_bucket()}/gallery")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> ImageStore:
    return request.getfixturevalue(f"{request.param}_store")


# Both backends


def test_put_then_get_returns_the_same_bytes(store: ImageStore) -> None:
    store.put(ORIGINAL, PNG, "image/png")
    assert store.get(ORIGINAL) == PNG


def test_put_twice_is_harmless(store: ImageStore) -> None:
    store.put(ORIGINAL, PNG, "image/png")
    store.put(ORIGINAL, PNG, "image/png")
    assert store.get(ORIGINAL) == PNG
    assert list(store.names()) == [ORIGINAL]


def test_exists_only_after_put(store: ImageStore) -> None:
    assert not store.exists(ORIGINAL)
    store.put(ORIGINAL, PNG, "image/png")
    assert store.exists(ORIGINAL)
    assert not store.exists(THUMB)


def test_delete_removes_and_tolerates_a_missing_object(store: ImageStore) -> None:
    store.put(ORIGINAL, PNG, "image/png")
    store.delete(ORIGINAL)
    assert not store.exists(ORIGINAL)
    store.delete(ORIGINAL)


def test_get_of_a_missing_object_is_not_found(store: ImageStore) -> None:
    with pytest.raises(NotFound):
        store.get(ORIGINAL)


def test_names_lists_originals_and_thumbnails_apart(store: ImageStore) -> None:
    other = original_name(f"{content_hash(WEBP)}.webp")
    store.put(ORIGINAL, PNG, "image/png")
    store.put(other, WEBP, "image/webp")
    store.put(THUMB, WEBP, "image/webp")
    assert sorted(store.names()) == sorted([ORIGINAL, other])
    assert list(store.names("thumbs/")) == [THUMB]


def test_names_refuses_other_prefixes(store: ImageStore) -> None:
    with pytest.raises(BadRequest):
        list(store.names("../"))


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_outside_the_two_patterns_are_refused(store: ImageStore, name: str) -> None:
    with pytest.raises(BadRequest):
        store.put(name, PNG, "image/png")
    for call in (store.get, store.exists, store.delete):
        with pytest.raises(BadRequest):
            call(name)


def test_ping_prepares_a_fresh_store_and_leaves_nothing_in_it(store: ImageStore) -> None:
    def prepared() -> bool:
        if isinstance(store, LocalStore):
            return store.root.is_dir()
        assert isinstance(store, MinioStore)
        return store.client.bucket_exists(store.bucket)

    assert not prepared()
    store.ping()
    assert prepared()
    assert list(store.names()) == [] and list(store.names("thumbs/")) == []
    if isinstance(store, LocalStore):  # the write probe is gone too
        assert list(store.root.iterdir()) == []


# Local folder


def test_relative_and_default_folders_live_under_the_instance_path(tmp_path: Path) -> None:
    settings = dict(endpoint=None, access_key=None, secret_key=None)
    default = open_store("", instance_path=tmp_path, **settings)
    relative = open_store("gallery", instance_path=tmp_path, **settings)
    absolute = open_store(str(tmp_path / "abs"), instance_path=Path("/elsewhere"), **settings)
    assert default.backend == "local"
    assert default.description == f"local:{tmp_path / 'images'}"
    assert relative.description == f"local:{tmp_path / 'gallery'}"
    assert absolute.description == f"local:{tmp_path / 'abs'}"


def test_local_put_leaves_no_temporary_files(local_store: LocalStore) -> None:
    local_store.put(ORIGINAL, PNG, "image/png")
    assert [p.name for p in (local_store.root / "images").iterdir()] == [KEY]


def test_local_names_skip_stray_files(local_store: LocalStore) -> None:
    local_store.put(ORIGINAL, PNG, "image/png")
    (local_store.root / "images" / ".abc.tmp").write_bytes(b"half")
    (local_store.root / "images" / "notes.txt").write_text("hello")
    (local_store.root / "images" / KEY.replace(".png", ".jpg")).mkdir()
    assert list(local_store.names()) == [ORIGINAL]


def test_local_folder_that_cannot_exist_is_unavailable(tmp_path: Path) -> None:
    # A regular file where a folder should be: fails even for root, unlike chmod.
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    store = LocalStore(blocker / "store")
    with pytest.raises(StorageUnavailable, match="not writable"):
        store.put(ORIGINAL, PNG, "image/png")
    with pytest.raises(StorageUnavailable, match="not writable"):
        store.ping()
    with pytest.raises(StorageUnavailable):
        store.get(ORIGINAL)
    with pytest.raises(StorageUnavailable):
        store.exists(ORIGINAL)


# S3


def test_s3_content_types_are_kept(s3_store: MinioStore) -> None:
    s3_store.put(ORIGINAL, PNG, "image/png")
    s3_store.put(THUMB, WEBP, "image/webp")
    assert stat_content_type(s3_store, ORIGINAL) == "image/png"
    assert stat_content_type(s3_store, THUMB) == "image/webp"


def test_s3_bucket_is_created_on_first_use(s3_server: S3Server) -> None:  # noqa: F811
    bucket = unique_bucket()
    store = s3_store_for(s3_server, f"s3://{bucket}")
    assert not store.client.bucket_exists(bucket)
    store.put(ORIGINAL, PNG, "image/png")
    assert store.client.bucket_exists(bucket)
    assert store.client.get_object(bucket, ORIGINAL).read() == PNG


def test_s3_names_ignore_objects_outside_the_prefix(s3_store: MinioStore) -> None:
    s3_store.put(ORIGINAL, PNG, "image/png")
    s3_store.client.put_object(s3_store.bucket, f"other/{ORIGINAL}", io.BytesIO(PNG), len(PNG))
    s3_store.client.put_object(s3_store.bucket, "gallery/images/notes.txt", io.BytesIO(b"x"), 1)
    assert list(s3_store.names()) == [ORIGINAL]


def test_s3_description_names_the_place_but_no_secret(s3_server: S3Server) -> None:  # noqa: F811
    store = s3_store_for(s3_server, "s3://photos/a/b/")
    assert store.backend == "s3"
    assert store.description == f"s3://photos/a/b/ @ http://{s3_server.endpoint}"
    assert s3_server.secret_key not in store.description


def test_s3_spec_needs_an_endpoint_and_a_safe_prefix(tmp_path: Path) -> None:
    keys = dict(instance_path=tmp_path, access_key="a", secret_key="b")
    with pytest.raises(ValueError, match="endpoint"):
        open_store("s3://photos", endpoint=None, **keys)
    with pytest.raises(ValueError, match="prefix"):
        open_store("s3://photos/../x", endpoint="127.0.0.1:9", **keys)
    with pytest.raises(ValueError, match="bucket"):
        open_store("s3://Bad_Bucket", endpoint="127.0.0.1:9", **keys)


def test_wrong_credentials_are_unavailable_without_showing_them(
    s3_server: S3Server,  # noqa: F811
) -> None:
    if s3_server.kind == "moto":
        pytest.skip("moto accepts any credentials")
    client = connect_minio(
        s3_server.endpoint, access_key="intruder", secret_key="sekrit-123", timeout=2.0
    )
    store = MinioStore(client, unique_bucket(), endpoint=s3_server.endpoint)
    with pytest.raises(StorageUnavailable) as caught:
        store.ping()
    assert "sekrit-123" not in caught.value.message


@pytest.mark.slow
def test_s3_calls_fail_fast_while_the_server_is_down(own_s3_server: S3Server) -> None:  # noqa: F811
    store = s3_store_for(own_s3_server, f"s3://{unique_bucket()}")
    store.put(ORIGINAL, PNG, "image/png")
    own_s3_server.stop()
    calls = (store.ping, lambda: store.get(ORIGINAL), lambda: store.put(THUMB, WEBP, "image/webp"))
    for call in calls:
        with pytest.raises(StorageUnavailable, match="is unreachable") as caught:
            call()
        assert own_s3_server.secret_key not in caught.value.message


@pytest.mark.slow
def test_s3_store_recovers_by_itself_after_a_restart(own_s3_server: S3Server) -> None:  # noqa: F811
    store = s3_store_for(own_s3_server, f"s3://{unique_bucket()}/gallery")
    store.put(ORIGINAL, PNG, "image/png")
    own_s3_server.stop()
    with pytest.raises(StorageUnavailable):
        store.get(ORIGINAL)
    own_s3_server.start()
    assert store.get(ORIGINAL) == PNG
    assert list(store.names()) == [ORIGINAL]


@pytest.mark.slow
def test_s3_store_opened_while_the_server_is_down_creates_its_bucket_later(
    own_s3_server: S3Server,  # noqa: F811
) -> None:
    own_s3_server.stop()
    bucket = unique_bucket()
    store = s3_store_for(own_s3_server, f"s3://{bucket}")
    with pytest.raises(StorageUnavailable):
        store.ping()
    own_s3_server.start()
    store.put(ORIGINAL, PNG, "image/png")
    assert store.client.bucket_exists(bucket)


def test_s3_bucket_removed_behind_our_back_is_made_again(s3_store: MinioStore) -> None:
    s3_store.put(ORIGINAL, PNG, "image/png")
    s3_store.delete(ORIGINAL)
    s3_store.client.remove_bucket(s3_store.bucket)
    s3_store.put(ORIGINAL, PNG, "image/png")
    assert s3_store.get(ORIGINAL) == PNG
