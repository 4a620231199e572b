"""A copy of a gallery image at upload (reported, or refused) and in search results."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from app.gallery.imaging import content_hash
from app.gallery.keys import original_name
from tests.admin_fixtures import log_in, outcomes, upload

pytest_plugins = ["tests.admin_fixtures"]


def smaller(data: bytes, size: int = 300, quality: int = 70) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image.thumbnail((size, size))  # keeps the aspect: a resized copy, not a distorted one
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def key_of(data: bytes) -> str:
    return f"{content_hash(data)}.jpg"


@pytest.fixture
def calibrated(admin_app, gallery_dir: Path):  # type: ignore[no-untyped-def]
    runner = admin_app.test_cli_runner()
    added = runner.invoke(args=["gallery", "add", str(gallery_dir), "--label-from-folder"])
    assert added.exit_code == 0, added.output
    result = runner.invoke(args=["index", "calibrate"])
    assert result.exit_code == 0, result.output
    return admin_app


def rows(app) -> set[str]:  # type: ignore[no-untyped-def]
    with app.app_context():
        from app.extensions import serving

        return {e.key for e in serving().store.iterate()}


def stored(app, key: str) -> bool:  # type: ignore[no-untyped-def]
    with app.app_context():
        from app.extensions import images

        return images().exists(original_name(key))


def test_gallery_add_reports_the_copy_it_adds(calibrated, photos, tmp_path: Path) -> None:
    copy = smaller(photos["coffee"])
    (tmp_path / "new.jpg").write_bytes(copy)
    result = calibrated.test_cli_runner().invoke(args=["gallery", "add", str(tmp_path / "new.jpg")])
    assert result.exit_code == 0, result.output
    assert f"new.jpg is a copy of {key_of(photos['coffee'])}" in result.output
    assert key_of(copy) in rows(calibrated)


def test_gallery_add_with_skip_copies_refuses_it_and_keeps_nothing(
    calibrated, photos, tmp_path: Path
) -> None:
    copy = smaller(photos["coffee"])
    other = Image.new("RGB", (120, 90), (10, 200, 30))
    buffer = io.BytesIO()
    other.save(buffer, "JPEG")
    (tmp_path / "new.jpg").write_bytes(copy)
    (tmp_path / "green.jpg").write_bytes(buffer.getvalue())
    result = calibrated.test_cli_runner().invoke(
        args=[
            "gallery",
            "add",
            str(tmp_path / "new.jpg"),
            str(tmp_path / "green.jpg"),
            "--skip-copies",
        ]
    )
    assert result.exit_code == 0, result.output
    assert f"new.jpg: a copy of {key_of(photos['coffee'])}" in result.output, result.output
    assert "Added 1," in result.output
    assert key_of(copy) not in rows(calibrated)
    assert not stored(calibrated, key_of(copy))
    assert key_of(buffer.getvalue()) in rows(calibrated)


def test_admin_upload_shows_the_copy_and_refuses_it_when_configured(
    make_app, admin_hash, gallery_dir: Path, photos
) -> None:
    app = make_app(ADMIN_PASSWORD_HASH=admin_hash, REJECT_COPIES=True)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["gallery", "add", str(gallery_dir)]).exit_code == 0
    assert runner.invoke(args=["index", "calibrate"]).exit_code == 0
    client = app.test_client()
    log_in(client)
    page = upload(client, {"repost.jpg": smaller(photos["chelsea"])}).get_data(as_text=True)
    assert outcomes(page) == {"repost.jpg": "rejected"}
    assert "a copy of " + key_of(photos["chelsea"]) in page
    assert key_of(smaller(photos["chelsea"])) not in rows(app)


def test_admin_upload_reports_a_copy_it_adds(calibrated, photos) -> None:
    client = calibrated.test_client()
    log_in(client)
    page = upload(client, {"repost.jpg": smaller(photos["chelsea"])}).get_data(as_text=True)
    assert outcomes(page) == {"repost.jpg": "added"}
    assert "same picture as" in page and key_of(photos["chelsea"])[:12] in page


def test_search_marks_the_copy_and_not_the_merely_similar(calibrated, photos) -> None:
    client = calibrated.test_client()
    query = smaller(photos["rocket"], 320, 60)
    response = client.post(
        "/api/search",
        data={"image": (io.BytesIO(query), "q.jpg"), "k": "6"},
        content_type="multipart/form-data",
    )
    results = response.get_json()["results"]
    assert results[0]["key"] == key_of(photos["rocket"])
    assert results[0]["copy"] is True
    assert [r["copy"] for r in results[1:]] == [False] * 5
    page = client.post(
        "/search",
        data={"image": (io.BytesIO(query), "q.jpg"), "k": "6"},
        content_type="multipart/form-data",
    ).get_data(as_text=True)
    assert page.count("same picture</span>") == 1
