"""``gallery add|sync s3://... --ray``: the rows of the in-process bucket path, on a local Ray.

Real S3 server, Milvus Lite, tiny model. Needs Ray (pip install -r
requirements-ray.txt); skipped without it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.buckets.inplace import location_of
from app.gallery.keys import ORIGINALS, THUMBS
from tests.bucket_data import jpeg, put, put_many
from tests.ray_fixtures import assert_same_rows, collection_rows

pytest_plugins = ["tests.bucket_fixtures"]
# Ray's own modules warn about its deprecated options while it runs.
pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::ResourceWarning"
)

COUNT = 40


def stored(app, kind: str) -> int:  # type: ignore[no-untyped-def]
    from app.extensions import images

    with app.app_context():
        return len(list(images().names(kind)))


def cli(app, *args: str) -> str:  # type: ignore[no-untyped-def]
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def summary(output: str) -> str:
    """The sync's report line."""
    line = next(line for line in output.splitlines() if " new, " in line)
    return line[line.index("s3://") :]  # after the progress bars' last frames


def counters(app) -> str:  # type: ignore[no-untyped-def]
    """The source's seen/indexed/failed counters from ``gallery sources``."""
    line = cli(app, "gallery", "sources").splitlines()[0]
    return line.split(": ", 1)[1].split("; last sync")[0]


@pytest.fixture
def two_apps(bucket_app, s3, bucket, tmp_path: Path, collection_name: str):  # type: ignore[no-untyped-def]
    """A bucket of COUNT photos under two folders and a broken one; an app for each path."""
    put_many(
        s3, bucket, ((f"{'cats' if i % 2 else 'dogs'}/{i:03d}.jpg", jpeg(i)) for i in range(COUNT))
    )
    put(s3, bucket, "dogs/broken.jpg", b"not an image")
    plain = bucket_app(COLLECTION=f"{collection_name}_a", INSTANCE_PATH=str(tmp_path / "a"))
    spread = bucket_app(COLLECTION=f"{collection_name}_b", INSTANCE_PATH=str(tmp_path / "b"))
    return plain, spread


def test_gallery_add_s3_with_ray_gives_the_rows_of_the_in_process_add(
    two_apps, bucket, local_ray
) -> None:  # type: ignore[no-untyped-def]
    plain, spread = two_apps
    args = ["gallery", "add", f"s3://{bucket}/", "--label-from-folder"]
    cli(plain, *args)
    output = cli(spread, *args, "--ray")
    assert "failed dogs/broken.jpg" in output and f"Indexed {COUNT}, " in output

    want, got = collection_rows(plain), collection_rows(spread)
    assert len(want) == COUNT
    assert_same_rows(want, got)
    assert {location_of(r["metadata"]).key.split("/")[0] for r in got.values()} == {"cats", "dogs"}
    # The originals stay in the bucket; only thumbnails are stored, as in process.
    assert (
        stored(spread, ORIGINALS) == 0 and stored(spread, THUMBS) == stored(plain, THUMBS) == COUNT
    )
    sources = cli(spread, "gallery", "sources")
    assert f"{COUNT + 1} objects seen, {COUNT} indexed, 1 failed" in sources


def test_gallery_sync_with_ray_matches_the_in_process_sync(two_apps, s3, bucket, local_ray) -> None:  # type: ignore[no-untyped-def]
    plain, spread = two_apps
    location = f"s3://{bucket}/"
    cli(plain, "gallery", "add", location, "--label-from-folder")
    cli(spread, "gallery", "add", location, "--label-from-folder", "--ray")
    for i in range(0, 10, 2):
        s3.remove_object(bucket, f"dogs/{i:03d}.jpg")
    put(s3, bucket, "cats/001.jpg", jpeg(1001))  # overwritten: changed
    put_many(s3, bucket, ((f"birds/{i:03d}.jpg", jpeg(i)) for i in range(2000, 2006)))

    want = summary(cli(plain, "gallery", "sync", location))
    got = summary(cli(spread, "gallery", "sync", location, "--ray"))
    assert "6 new, 1 changed, 5 gone" in want
    assert got.split(" in ")[0] == want.split(" in ")[0]  # the same counts, whatever the time
    assert_same_rows(collection_rows(plain), collection_rows(spread))
    assert stored(spread, THUMBS) == stored(plain, THUMBS)
    assert counters(spread) == counters(plain)

    again = cli(spread, "gallery", "sync", location, "--ray")
    assert "0 new, 0 changed, 0 gone" in again and "Indexed 0" in again
