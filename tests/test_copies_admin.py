"""The admin Duplicates page: background search, keep one and delete the others, marks, CSV."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from app.gallery.imaging import content_hash
from app.gallery.keys import original_name, thumb_name
from tests.helpers import wait_until

pytest_plugins = ["tests.admin_fixtures"]


def smaller(data: bytes, size: int = 300) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=70)
    return buffer.getvalue()


@pytest.fixture
def planted(admin_app, gallery_dir: Path, photos, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The gallery, a copy of the astronaut in it, calibrated; returns (original, copy) ids."""
    copy = smaller(photos["astronaut"])
    (gallery_dir / "other" / "astronaut-copy.jpg").write_bytes(copy)
    runner = admin_app.test_cli_runner()
    added = runner.invoke(args=["gallery", "add", str(gallery_dir), "--label-from-folder"])
    assert added.exit_code == 0, added.output
    assert runner.invoke(args=["index", "calibrate"]).exit_code == 0
    return content_hash(photos["astronaut"]), content_hash(copy)


def search(client) -> dict:  # type: ignore[no-untyped-def]
    assert client.post("/admin/duplicates/run").status_code == 302
    return wait_until(
        lambda: (
            (s := client.get("/admin/duplicates/status").get_json())["phase"] != "running" and s
        ),
        60,
        "the duplicate search to finish",
    )


def in_milvus(app, id_: str) -> bool:  # type: ignore[no-untyped-def]
    with app.app_context():
        from app.extensions import serving

        return bool(serving().store.existing([id_]))


def in_store(app, key: str) -> bool:  # type: ignore[no-untyped-def]
    with app.app_context():
        from app.extensions import images

        return images().exists(original_name(key)) or images().exists(thumb_name(key))


def test_the_page_needs_a_login(admin_app) -> None:
    response = admin_app.test_client().get("/admin/duplicates")
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]


def test_the_search_runs_in_the_background_and_lists_the_group(
    admin_app, admin_client, planted
) -> None:
    original, copy = planted
    state = search(admin_client)
    assert state["phase"] == "done" and state["groups"] == 1
    page = admin_client.get("/admin/duplicates").get_data(as_text=True)
    assert "1 groups" in page
    assert f'value="{original}" checked' in page  # the larger original is the suggested keeper
    assert f'name="ids" value="{copy}"' in page
    csv = admin_client.get("/admin/duplicates/report.csv")
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    assert f"{copy}.jpg" in csv.get_data(as_text=True)


def test_keeping_one_deletes_the_others_from_the_store_and_milvus(
    admin_app, admin_client, planted
) -> None:
    original, copy = planted
    search(admin_client)
    response = admin_client.post(
        "/admin/duplicates/keep", data={"ids": [original, copy], "keep": original}
    )
    assert response.status_code == 302
    assert not in_milvus(admin_app, copy) and not in_store(admin_app, f"{copy}.jpg")
    assert in_milvus(admin_app, original) and in_store(admin_app, f"{original}.jpg")
    page = admin_client.get("/admin/duplicates").get_data(as_text=True)
    assert "deleted 1 copy" in page and "0 groups" in page


def test_not_duplicates_keeps_both_and_the_group_does_not_come_back(
    admin_app, admin_client, planted
) -> None:
    original, copy = planted
    search(admin_client)
    assert (
        admin_client.post("/admin/duplicates/separate", data={"ids": [original, copy]}).status_code
        == 302
    )
    assert in_milvus(admin_app, copy) and in_milvus(admin_app, original)
    assert search(admin_client)["groups"] == 0


def test_a_group_not_in_the_report_is_refused(admin_client, planted) -> None:
    original, copy = planted
    search(admin_client)
    other = "0" * 64
    response = admin_client.post(
        "/admin/duplicates/keep", data={"ids": [original, other], "keep": original}
    )
    assert response.status_code == 400


def test_the_overview_shows_the_copy_threshold(admin_client, planted) -> None:
    page = admin_client.get("/admin/").get_data(as_text=True)
    assert "(precision" in page and 'id="copy-threshold"' in page


def test_one_search_at_a_time_and_a_dead_one_is_reported(tmp_path: Path) -> None:
    import threading

    from app.copies.job import DuplicateJob, DuplicatesRunning
    from app.copies.report import DuplicateReport
    from app.jobs.state import write_json

    job = DuplicateJob(tmp_path, "gallery")
    release = threading.Event()

    def work(progress):  # type: ignore[no-untyped-def]
        progress(1, 2)
        release.wait(30)
        return DuplicateReport(0.9, True, [], 2, "exact", 0.1)

    job.start(work)
    with pytest.raises(DuplicatesRunning):
        job.start(work)
    release.set()
    done = wait_until(lambda: job.state()["phase"] == "done" and job.state(), 30, "the job")
    assert done["groups"] == 0 and job.report()["scanned"] == 2
    # A state that says running while nobody holds the lock: its worker died.
    write_json(job.state_path, {"phase": "running", "done": 1, "total": 2})
    assert job.state()["phase"] == "failed" and "start it again" in job.state()["error"]
