"""A bucket indexed in place (real S3 server, real Milvus Lite, tiny real model)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from app.buckets.inplace import location_of
from app.buckets.location import Location, parse
from app.exceptions import BadRequest
from app.gallery.keys import ORIGINALS, THUMBS
from tests.bucket_data import jpeg, put, put_many

pytest_plugins = ["tests.bucket_fixtures"]

COUNT = 200  # 100 under each of two prefixes


@pytest.mark.parametrize(
    "text, expected",
    [
        ("s3://photos", Location("photos", "")),
        ("s3://photos/", Location("photos", "")),
        ("s3://photos/a/b", Location("photos", "a/b/")),
        ("s3://photos//a//b/", Location("photos", "a/b/")),
        ("s3://my.photos-1/2024 trip/", Location("my.photos-1", "2024 trip/")),
    ],
)
def test_locations_are_parsed_and_normalised(text: str, expected: Location) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "photos/a",
        "http://photos/a",
        "s3://Photos/a",
        "s3://ph/a",
        "s3://-photos/a",
        "s3://192.168.1.1/a",
        "s3://photos/../etc",
        "s3://photos/a/./b",
        "s3://photos/a\\b",
        "s3://photos/a\x00b",
        "s3://photos/" + "a" * 600,
        "s3://a..b/x",
    ],
)
def test_bad_locations_are_refused(text: str) -> None:
    with pytest.raises(BadRequest):
        parse(text)


def two_prefixes(s3, bucket: str) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    objects = {f"{'cats' if i % 2 else 'dogs'}/img-{i:04d}.jpg": jpeg(i) for i in range(COUNT)}
    put_many(s3, bucket, objects.items())
    return objects


@pytest.fixture
def indexed(bucket_app, s3, bucket):  # type: ignore[no-untyped-def]
    """200 objects under cats/ and dogs/, indexed in place with folder labels by the CLI."""
    objects = two_prefixes(s3, bucket)
    app = bucket_app()
    result = app.test_cli_runner().invoke(
        args=["gallery", "add", f"s3://{bucket}/", "--label-from-folder"]
    )
    assert result.exit_code == 0, result.output
    return app, objects


def rows(app):  # type: ignore[no-untyped-def]
    from app.extensions import vectors

    with app.app_context():
        return list(vectors().iterate())


def test_a_bucket_is_indexed_in_place_with_folder_labels(indexed) -> None:  # type: ignore[no-untyped-def]
    app, objects = indexed
    found = rows(app)
    assert len(found) == COUNT
    by_object = {location_of(r.metadata).key: r for r in found}
    assert set(by_object) == set(objects)
    for key, row in by_object.items():
        assert row.label == key.split("/")[0]
        assert location_of(row.metadata).bucket
        assert location_of(row.metadata).size == len(objects[key])


def test_no_original_is_copied_but_every_thumbnail_is_made(indexed) -> None:  # type: ignore[no-untyped-def]
    from app.extensions import images

    app, _ = indexed
    with app.app_context():
        assert list(images().names(ORIGINALS)) == []
        assert len(list(images().names(THUMBS))) == COUNT


def test_in_place_images_are_searchable_and_hide_their_location(indexed) -> None:  # type: ignore[no-untyped-def]
    app, objects = indexed
    client = app.test_client()
    key = "cats/img-0007.jpg"
    reply = client.post(
        "/api/search", data={"image": (io.BytesIO(objects[key]), "q.jpg"), "k": "3"}
    )
    assert reply.status_code == 200, reply.get_json()
    best = reply.get_json()["results"][0]
    assert best["score"] > 0.999 and best["label"] == "cats"
    assert "_s3" not in best["metadata"] and best["metadata"]["source"] == "img-0007.jpg"


@pytest.mark.parametrize("mode", ["stream", "redirect"])
def test_originals_are_served_from_the_bucket(bucket_app, s3, bucket, mode: str) -> None:  # type: ignore[no-untyped-def]
    data = jpeg(1234)
    put(s3, bucket, "a/one.jpg", data)
    app = bucket_app(S3_SERVE=mode)
    assert app.test_cli_runner().invoke(args=["gallery", "add", f"s3://{bucket}/a"]).exit_code == 0
    key = rows(app)[0].key
    reply = app.test_client().get(f"/images/{key}")
    if mode == "stream":
        assert reply.status_code == 200 and reply.data == data
        assert reply.headers["Content-Type"] == "image/jpeg"
    else:
        assert reply.status_code == 302 and "X-Amz-Signature=" in reply.location
        assert "max-age=31536000" not in reply.headers.get("Cache-Control", "")
        import urllib.request

        with urllib.request.urlopen(reply.location, timeout=10) as fetched:  # noqa: S310
            assert fetched.read() == data
    assert app.test_client().get(f"/thumbs/{key}").status_code == 200


@pytest.mark.parametrize("mode", ["stream", "redirect"])
def test_an_original_gone_from_the_bucket_is_a_404_and_gallery_check_reports_it(
    bucket_app,
    s3,
    bucket,
    mode: str,  # type: ignore[no-untyped-def]
) -> None:
    put(s3, bucket, "a/one.jpg", jpeg(1))
    put(s3, bucket, "a/two.jpg", jpeg(2))
    app = bucket_app(S3_SERVE=mode)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["gallery", "add", f"s3://{bucket}/a/"]).exit_code == 0
    gone = next(r for r in rows(app) if location_of(r.metadata).key == "a/one.jpg")
    s3.remove_object(bucket, "a/one.jpg")
    assert app.test_client().get(f"/images/{gone.key}").status_code == 404
    check = runner.invoke(args=["gallery", "check"])
    assert check.exit_code == 1
    assert "1 rows whose bucket object is gone" in check.output and "a/one.jpg" in check.output
    assert "rows without an original" not in check.output
    assert "thumbnails of nothing" not in check.output


def test_labels_come_from_user_metadata_or_a_csv(bucket_app, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    put(s3, bucket, "m/one.jpg", jpeg(1), metadata={"label": "sofa"})
    put(s3, bucket, "m/two.jpg", jpeg(2), metadata={"kind": "chair"})
    put(s3, bucket, "c/three.jpg", jpeg(3))
    put(s3, bucket, "c/four.jpg", jpeg(4))
    labels = tmp_path / "labels.csv"
    labels.write_text("key,label\nthree.jpg,lamp\nc/four.jpg,rug\n")
    app = bucket_app()
    runner = app.test_cli_runner()
    assert (
        runner.invoke(
            args=["gallery", "add", f"s3://{bucket}/m/", "--label-meta", "label"]
        ).exit_code
        == 0
    )
    assert (
        runner.invoke(
            args=["gallery", "add", f"s3://{bucket}/c/", "--labels", str(labels)]
        ).exit_code
        == 0
    )
    found = {location_of(r.metadata).key: r.label for r in rows(app)}
    assert found == {
        "m/one.jpg": "sofa",
        "m/two.jpg": "",
        "c/three.jpg": "lamp",
        "c/four.jpg": "rug",
    }


def test_a_broken_object_is_reported_and_the_rest_indexed(bucket_app, s3, bucket) -> None:  # type: ignore[no-untyped-def]
    put(s3, bucket, "x/good.jpg", jpeg(5))
    put(s3, bucket, "x/broken.jpg", b"not an image")
    put(s3, bucket, "x/notes.txt", b"not listed: not an image name")
    app = bucket_app()
    result = app.test_cli_runner().invoke(args=["gallery", "add", f"s3://{bucket}/x"])
    assert result.exit_code == 0, result.output
    assert "failed x/broken.jpg" in result.output and "Indexed 1" in result.output
    assert len(rows(app)) == 1
    sources = app.test_cli_runner().invoke(args=["gallery", "sources"]).output
    assert "2 objects seen, 1 indexed, 1 failed" in sources


def test_reserved_metadata_cannot_be_filtered_on(client) -> None:  # type: ignore[no-untyped-def]
    reply = client.post(
        "/api/search", data={"image": (io.BytesIO(jpeg(1)), "q.jpg"), "metadata": '{"_s3": "x"}'}
    )
    assert reply.status_code == 400 and "reserved" in reply.get_json()["error"]["message"]


def test_a_reindex_re_encodes_in_place_images_from_their_bucket(bucket_app, s3, bucket) -> None:  # type: ignore[no-untyped-def]
    from app.extensions import serving
    from app.jobs import launch

    for i in range(3):
        put(s3, bucket, f"r/{i}.jpg", jpeg(100 + i))
    app = bucket_app()
    assert app.test_cli_runner().invoke(args=["gallery", "add", f"s3://{bucket}/r"]).exit_code == 0
    before = {r.id: r.metadata for r in rows(app)}
    s3.remove_object(bucket, "r/2.jpg")
    with app.app_context():
        state = launch.run_here(app, "reindex", user="tester")
        store = serving().store
        after = {e.id: e.metadata for e in store.iterate(collection=store.resolve())}
    assert state.phase == "done", state.error
    assert (state.total, state.failed) == (3, 1)
    assert "r/2.jpg is not in its bucket" in state.failures[0]
    assert len(after) == 2 and all(after[i] == before[i] for i in after)


def test_lookalikes_own_image_bucket_cannot_be_a_source(bucket_app, s3_server, bucket) -> None:  # type: ignore[no-untyped-def]
    app = bucket_app(STORAGE=f"s3://{bucket}/store")
    for location in (f"s3://{bucket}/", f"s3://{bucket}/store/thumbs"):
        result = app.test_cli_runner().invoke(args=["gallery", "add", location])
        assert result.exit_code == 1 and "overlaps Lookalike's own image store" in result.output
    result = app.test_cli_runner().invoke(args=["gallery", "add", f"s3://{bucket}/photos"])
    assert result.exit_code == 0, result.output
