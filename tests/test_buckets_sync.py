"""``gallery sync``: a bucket source converges, resumes, dry-runs (real S3 server and Milvus)."""

from __future__ import annotations

import pytest

from app.buckets.inplace import location_of
from app.gallery.ingest import ADDED
from app.gallery.keys import THUMBS
from tests.bucket_data import jpeg, put, put_many

pytest_plugins = ["tests.bucket_fixtures"]


def rows(app):  # type: ignore[no-untyped-def]
    from app.extensions import vectors

    with app.app_context():
        return list(vectors().iterate())


def in_bucket(s3, bucket: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {o.object_name for o in s3.list_objects(bucket, recursive=True)}


def thumbs(app) -> int:  # type: ignore[no-untyped-def]
    from app.extensions import images

    with app.app_context():
        return len(list(images().names(THUMBS)))


def cli(app, *args: str):  # type: ignore[no-untyped-def]
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_sync_converges_to_the_buckets_content_and_a_second_sync_does_nothing(
    bucket_app,
    s3,
    bucket,  # type: ignore[no-untyped-def]
) -> None:
    put_many(s3, bucket, ((f"{'a' if i % 2 else 'b'}/{i:04d}.jpg", jpeg(i)) for i in range(200)))
    app = bucket_app()
    cli(app, "gallery", "add", f"s3://{bucket}/", "--label-from-folder")
    for i in range(0, 40, 2):
        s3.remove_object(bucket, f"b/{i:04d}.jpg")
    put_many(s3, bucket, ((f"c/{i:04d}.jpg", jpeg(i)) for i in range(1000, 1020)))

    output = cli(app, "gallery", "sync", f"s3://{bucket}")
    assert "20 new, 0 changed, 20 gone" in output and "removed 20 rows" in output
    found = rows(app)
    assert {location_of(r.metadata).key for r in found} == in_bucket(s3, bucket)
    assert len(found) == 200 and thumbs(app) == 200
    assert {r.label for r in found if location_of(r.metadata).key.startswith("c/")} == {"c"}

    again = cli(app, "gallery", "sync", f"s3://{bucket}")
    assert "0 new, 0 changed, 0 gone, 200 unchanged" in again and "Indexed 0" in again
    assert {r.id for r in rows(app)} == {r.id for r in found}


def test_an_overwritten_object_is_re_indexed_with_its_new_content(bucket_app, s3, bucket) -> None:  # type: ignore[no-untyped-def]
    put(s3, bucket, "p/one.jpg", jpeg(1))
    put(s3, bucket, "p/two.jpg", jpeg(2))
    app = bucket_app()
    cli(app, "gallery", "add", f"s3://{bucket}/p")
    old = {location_of(r.metadata).key: r.id for r in rows(app)}
    put(s3, bucket, "p/one.jpg", jpeg(3))
    assert "0 new, 1 changed, 0 gone" in cli(app, "gallery", "sync", f"s3://{bucket}/p")
    new = {location_of(r.metadata).key: r.id for r in rows(app)}
    assert new["p/two.jpg"] == old["p/two.jpg"] and new["p/one.jpg"] != old["p/one.jpg"]
    assert len(new) == 2 and thumbs(app) == 2


def test_a_dry_run_reports_and_changes_nothing(bucket_app, s3, bucket) -> None:  # type: ignore[no-untyped-def]
    put(s3, bucket, "d/one.jpg", jpeg(1))
    app = bucket_app()
    cli(app, "gallery", "add", f"s3://{bucket}/d")
    put(s3, bucket, "d/two.jpg", jpeg(2))
    s3.remove_object(bucket, "d/one.jpg")
    output = cli(app, "gallery", "sync", f"s3://{bucket}/d", "--dry-run")
    assert "would index 1 new and 0 changed, remove 1 gone" in output
    assert [location_of(r.metadata).key for r in rows(app)] == ["d/one.jpg"]


def test_an_interrupted_sync_resumes_and_indexes_nothing_twice(bucket_app, s3, bucket) -> None:  # type: ignore[no-untyped-def]
    from app.buckets import service

    put_many(s3, bucket, ((f"i/{i:04d}.jpg", jpeg(i)) for i in range(100)))
    app = bucket_app()
    added: list[str] = []

    class Injected(Exception):
        pass

    def fail_after_three_chunks(report) -> None:  # type: ignore[no-untyped-def]
        if report.tally.added >= 48:
            raise Injected

    def count(outcome) -> None:  # type: ignore[no-untyped-def]
        if outcome.status == ADDED:
            added.append(outcome.name)

    with app.app_context():
        from app.buckets.location import parse

        source = service.add_source(parse(f"s3://{bucket}/i"))
        with pytest.raises(Injected):
            service.syncer(
                source, chunk=16, on_outcome=count, after_chunk=fail_after_three_chunks
            ).sync()
        assert len(added) == 48
        stopped = service.catalog().by_id(source.id)
        assert stopped.phase == "failed" and stopped.checkpoint == "i/0047.jpg"
        report = service.syncer(source, chunk=16, on_outcome=count).sync()
    assert report.resumed_after == "i/0047.jpg" and report.tally.added == 52
    assert sorted(added) == sorted(set(added)) and len(added) == 100
    assert len(rows(app)) == 100
    final = app.test_cli_runner().invoke(args=["gallery", "sources"]).output
    assert "100 objects seen, 100 indexed, 0 failed" in final and "(done)" in final


def test_a_row_follows_a_remaining_copy_when_its_object_goes(bucket_app, s3, bucket) -> None:  # type: ignore[no-untyped-def]
    same = jpeg(7)
    put(s3, bucket, "k/first.jpg", same)
    put(s3, bucket, "k/second.jpg", same)
    app = bucket_app()
    cli(app, "gallery", "add", f"s3://{bucket}/k")
    [row] = rows(app)
    assert location_of(row.metadata).key == "k/first.jpg"
    s3.remove_object(bucket, "k/first.jpg")
    assert "re-pointed 1" in cli(app, "gallery", "sync", f"s3://{bucket}/k")
    [row] = rows(app)
    assert location_of(row.metadata).key == "k/second.jpg"
    assert app.test_client().get(f"/images/{row.key}").data == same
    s3.remove_object(bucket, "k/second.jpg")
    assert "removed 1 rows" in cli(app, "gallery", "sync", f"s3://{bucket}/k")
    assert rows(app) == [] and thumbs(app) == 0


def test_syncing_a_location_never_added_says_how_to_add_it(bucket_app, bucket) -> None:  # type: ignore[no-untyped-def]
    result = bucket_app().test_cli_runner().invoke(args=["gallery", "sync", f"s3://{bucket}/z"])
    assert result.exit_code == 1 and "gallery add s3://" in result.output
