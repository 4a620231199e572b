"""Ingest: files, folders, zips and labels into a real store and a real Milvus Lite."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.exceptions import StorageUnavailable
from app.gallery.ingest import ADDED, DUPLICATE, REJECTED, Ingestor
from app.gallery.keys import original_name, thumb_name
from app.gallery.sources import Labels, collect
from tests.helpers import make_zip


@pytest.fixture
def services(app):  # type: ignore[no-untyped-def]
    from app.extensions import encoder, images, vectors

    with app.app_context():
        yield encoder(), vectors(), images()


def test_a_folder_is_added_with_folder_labels(services, gallery_dir: Path) -> None:
    encoder, vectors, images = services
    report = Ingestor(encoder, vectors, images, batch_size=4).run(
        collect([gallery_dir], label_from_folder=True))
    assert report.added == 6 and not report.rejected
    assert vectors.count() == 6
    for outcome in report.outcomes:
        assert images.exists(original_name(outcome.key)) and images.exists(thumb_name(outcome.key))
    labels = {e.metadata["source"]: e.label for e in vectors.iterate()}
    assert labels["rocket.jpg"] == "space" and labels["coffee.jpg"] == "other"


def test_a_rerun_skips_everything_already_indexed(services, gallery_dir: Path) -> None:
    ingestor = Ingestor(*services, batch_size=4)
    ingestor.run(collect([gallery_dir]))
    again = ingestor.run(collect([gallery_dir]))
    assert (again.added, again.duplicates) == (0, 6)
    assert services[1].count() == 6


@pytest.mark.parametrize("overlap", [True, False], ids=["prefetch-thread", "alternating-pool"])
@pytest.mark.parametrize("batch_size", [2, 8])
def test_a_zip_with_good_duplicate_and_broken_images_reports_each(
    services, tmp_path: Path, photos: dict[str, bytes], overlap: bool, batch_size: int
) -> None:
    """Both ways of preparing batches (see app/ingest.py) report the same, whether
    the copies fall in one batch or in two."""
    archive = tmp_path / "upload.zip"
    archive.write_bytes(make_zip({
        "a/coffee.jpg": photos["coffee"],
        "b/coffee-again.jpg": photos["coffee"],
        "broken.jpg": b"not an image at all",
        "broken-again.jpg": b"not an image at all",
        "truncated.jpg": photos["chelsea"][:500],
        "c/chelsea.jpg": photos["chelsea"],
        "notes.txt": b"ignored: not an image suffix",
    }))
    ingestor = Ingestor(*services, batch_size=batch_size)
    ingestor.overlap = overlap
    report = ingestor.run(collect([archive]))
    status = {o.name.split(":")[-1]: o.status for o in report.outcomes}
    assert status == {"a/coffee.jpg": ADDED, "b/coffee-again.jpg": DUPLICATE,
                      "broken.jpg": REJECTED, "broken-again.jpg": REJECTED,
                      "truncated.jpg": REJECTED, "c/chelsea.jpg": ADDED}
    assert len(report.outcomes) == 6
    reasons = {o.name.split(":")[-1]: o.reason for o in report.rejected}
    assert "not an image we can read" in reasons["broken.jpg"]
    assert reasons["broken-again.jpg"] == reasons["broken.jpg"]
    assert services[1].count() == 2
    stored = sorted(services[2].names())
    assert len(stored) == 2 and len(list(services[2].names("thumbs/"))) == 2


def test_the_pipeline_overlaps_only_where_the_model_leaves_cores_free(services) -> None:
    import os

    import torch

    cores = len(os.sched_getaffinity(0))
    if services[0].device != "cpu" or cores < 2:
        pytest.skip("needs the model on a CPU of 2 cores or more")
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(cores)
        assert not Ingestor(*services).overlap  # the model takes every core: alternate
        torch.set_num_threads(cores - 1)
        assert Ingestor(*services).overlap  # a core to spare: prepare alongside
    finally:
        torch.set_num_threads(previous)


def test_labels_and_metadata_come_from_a_csv(services, gallery_dir: Path, tmp_path: Path) -> None:
    csv_path = gallery_dir / "labels.csv"
    csv_path.write_text("path,label,sku\nspace/rocket.jpg,Rocket,R-1\nother/coffee.jpg,Coffee,C-9\n")
    Ingestor(*services).run(collect([gallery_dir], labels=Labels.from_csv(csv_path)))
    rows = {e.label: e.metadata for e in services[1].iterate() if e.label}
    assert rows["Rocket"]["sku"] == "R-1" and rows["Coffee"]["sku"] == "C-9"


def test_an_interrupted_ingest_completes_on_rerun(services, gallery_dir: Path) -> None:
    encoder, vectors, images = services

    class FailingStore:
        """The real store, failing after a few writes (a storage outage mid-run)."""

        def __init__(self, inner, budget: int) -> None:
            self.inner, self.budget = inner, budget

        def put(self, name: str, data: bytes, content_type: str) -> None:
            self.budget -= 1
            if self.budget < 0:
                raise StorageUnavailable("store went away")
            self.inner.put(name, data, content_type)

    with pytest.raises(StorageUnavailable):
        ingestor = Ingestor(encoder, vectors, FailingStore(images, 5), batch_size=2)
        ingestor.run(collect([gallery_dir]))
    partial = vectors.count()
    assert partial < 6
    report = Ingestor(encoder, vectors, images, batch_size=2).run(collect([gallery_dir]))
    assert report.added == 6 - partial and report.duplicates == partial
    assert vectors.count() == 6
    assert len(list(images.names("images/"))) == 6


@pytest.mark.parametrize("size", [(640, 480), (480, 640), (300, 300), (200, 900), (120, 90)])
def test_a_thumbnail_made_from_the_encoders_resize_matches_one_from_the_original(
        services, tmp_path: Path, size: tuple[int, int]) -> None:
    """Ingest makes the thumbnail from the encoder's resized input where that covers
    the thumbnail: same size as from the original, and the same picture."""
    import io

    import numpy as np
    from PIL import Image

    from app.gallery import imaging
    from app.gallery.keys import thumb_name
    from app.model.encoder import Encoder
    from app.model.preprocess import Preprocess

    tiny, vectors, images = services
    # The tiny test model resizes to 64 px; DINOv2's recipe (256, crop 224) is the
    # one that covers thumbnails. Same backbone, so the same collection accepts it.
    encoder = Encoder(tiny.backbone, Preprocess.default(), name=tiny.name, precision=tiny.precision)
    gradient = np.add.outer(np.arange(size[1]) * 255 // size[1], np.arange(size[0]) * 0)
    photo = Image.fromarray(np.stack([gradient, gradient[::-1], np.full_like(gradient, 90)],
                                     axis=-1).astype(np.uint8))
    folder = tmp_path / "one"
    folder.mkdir()
    buffer = io.BytesIO()
    photo.save(buffer, "PNG")
    (folder / "photo.png").write_bytes(buffer.getvalue())
    report = Ingestor(encoder, vectors, images).run(collect([folder]))
    stored = Image.open(io.BytesIO(images.get(thumb_name(report.outcomes[0].key))))
    direct = Image.open(io.BytesIO(imaging.thumbnail(photo)))
    shared = min(size) >= imaging.THUMB_SIZE
    assert encoder.preprocess.shrinks_keeping_aspect(photo, imaging.THUMB_SIZE) == shared
    assert stored.format == "JPEG"
    assert abs(stored.size[0] - direct.size[0]) <= 1 and abs(stored.size[1] - direct.size[1]) <= 1
    a = np.asarray(stored.resize(direct.size), dtype=np.float32)
    assert np.abs(a - np.asarray(direct, dtype=np.float32)).mean() < 4


def test_re_encoding_writes_no_image(services, gallery_dir: Path) -> None:
    """What a reindex runs: rows for the images, nothing new in the image store."""
    encoder, vectors, images = services
    report = Ingestor(encoder, vectors, images, store_images=False).run(collect([gallery_dir]))
    assert report.added > 0
    assert list(images.names()) == [] and list(images.names("thumbs/")) == []
    assert vectors.count() == report.added
