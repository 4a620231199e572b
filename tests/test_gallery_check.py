"""gallery check: find and repair what an interrupted add or delete left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.gallery import imaging
from app.gallery.check import check, repair
from app.gallery.ingest import Ingestor
from app.gallery.keys import original_name, thumb_name
from app.gallery.sources import collect


@pytest.fixture
def gallery(app, gallery_dir: Path):  # type: ignore[no-untyped-def]
    from app.extensions import encoder, images, vectors

    with app.app_context():
        ingestor = Ingestor(encoder(), vectors(), images(), batch_size=4)
        report = ingestor.run(collect([gallery_dir]))
        yield ingestor, [o.key for o in report.outcomes]


def test_a_clean_gallery_is_consistent(gallery) -> None:  # type: ignore[no-untyped-def]
    ingestor, keys = gallery
    report = check(ingestor.vectors, ingestor.images)
    assert report.consistent and report.rows == report.originals == report.thumbs == len(keys)


def test_every_kind_of_orphan_is_found_and_repaired(gallery, photos) -> None:  # type: ignore[no-untyped-def]
    ingestor, keys = gallery
    images, vectors = ingestor.images, ingestor.vectors
    vectors.delete([keys[0].split(".")[0]])  # an interrupted add: original, no row
    images.delete(original_name(keys[1]))  # an interrupted delete: row, no original
    images.delete(thumb_name(keys[1]))
    images.delete(thumb_name(keys[2]))  # a lost thumbnail
    stray = thumb_name("f" * 64 + ".jpg")
    images.put(stray, b"\xff\xd8", "image/jpeg")  # a thumbnail of nothing

    report = check(vectors, images)
    assert report.unindexed == [keys[0]]
    assert report.missing_originals == [keys[1].split(".")[0]]
    assert report.missing_thumbs == [keys[2]]
    assert report.orphan_thumbs == [stray]

    repaired = repair(report, ingestor)
    assert repaired.indexed.added == 1 and repaired.rows_deleted == 1
    assert repaired.thumbs_deleted == 1 and repaired.thumbs_made == 1
    after = check(vectors, images)
    assert after.consistent and after.rows == len(keys) - 1


def test_the_cli_reports_and_repairs(runner, gallery_dir, app) -> None:  # type: ignore[no-untyped-def]
    from app.extensions import images

    assert runner.invoke(args=["gallery", "add", str(gallery_dir)]).exit_code == 0
    with app.app_context():
        name = next(images().names("thumbs/"))
        images().delete(name)
    found = runner.invoke(args=["gallery", "check"])
    assert found.exit_code == 1 and "1 originals without a thumbnail" in found.output
    fixed = runner.invoke(args=["gallery", "check", "--repair"])
    assert fixed.exit_code == 0
    assert "made 1 thumbnails" in fixed.output and "Consistent." in fixed.output


def test_a_lost_thumbnail_is_not_found_until_repair_makes_it_again(  # type: ignore[no-untyped-def]
        gallery, app) -> None:
    """Thumbnails are JPEG only: there is no other name to fall back to."""
    import io

    from PIL import Image

    ingestor, keys = gallery
    images, vectors = ingestor.images, ingestor.vectors
    images.delete(thumb_name(keys[0]))
    assert app.test_client().get(f"/thumbs/{keys[0]}").status_code == 404

    repaired = repair(check(vectors, images), ingestor)
    assert repaired.thumbs_made == 1 and repaired.thumbs_deleted == 0
    served = app.test_client().get(f"/thumbs/{keys[0]}")
    assert served.status_code == 200 and served.mimetype == imaging.THUMB_MIME
    assert Image.open(io.BytesIO(served.data)).format == "JPEG"
