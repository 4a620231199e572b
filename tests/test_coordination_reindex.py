"""Two web servers side by side on one Milvus, one S3 server and one Redis, with real
reindex job processes: the lock, the progress and the gallery lock are the deployment's,
not a host's (app/coordination/). Slow: each job is a new Python process."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

from app.coordination import coordination
from app.galleries.current import job_files
from app.jobs import launch
from app.jobs.state import JobFiles
from tests.admin_fixtures import jpeg, log_in, outcomes, upload, wait_for_job
from tests.helpers import wait_until
from tests.servers import redis_server  # noqa: F401  (fixture)
from tests.test_reindex_process import fill_gallery, held_in

pytest_plugins = ["tests.admin_fixtures", "tests.bucket_fixtures"]

JOB_TIMEOUT = 300.0  # a job process imports torch: allow for a busy machine
LEASE = 3.0  # seconds, short so that a dead job's lock lapses quickly here
UPLOADS = 50


@pytest.fixture
def two_servers(bucket_app, bucket: str, admin_hash: str, redis_server: str, tmp_path: Path):  # noqa: F811
    """Apps A and B: separate instance folders, one Milvus server (the session's Lite
    server), one S3 bucket for the images, one Redis."""
    shared = {
        "REDIS_URL": redis_server,
        "REDIS_PREFIX": f"t{uuid.uuid4().hex[:10]}",
        "REDIS_LEASE_SECONDS": LEASE,
        "ADMIN_PASSWORD_HASH": admin_hash,
        "STORAGE": f"s3://{bucket}/gallery",
        "ALIAS_CHECK_SECONDS": 0.2,
        "REINDEX_NICE": 0,
    }
    a = bucket_app(INSTANCE_PATH=str(tmp_path / "host-a"), **shared)
    b = bucket_app(INSTANCE_PATH=str(tmp_path / "host-b"), **shared)
    return a, b


def files_of(app) -> JobFiles:  # type: ignore[no-untyped-def]
    with app.app_context():
        return job_files(app)


def admin(app):  # type: ignore[no-untyped-def]
    client = app.test_client()
    log_in(client)
    return client


@pytest.mark.slow
def test_uploads_on_b_during_a_reindex_on_a_all_reach_the_new_collection(
    two_servers, tmp_path: Path, photos
) -> None:
    a, b = two_servers
    size = fill_gallery(a, tmp_path, photos, extra=12)
    admin_a, admin_b = admin(a), admin(b)
    files_a, files_b = files_of(a), files_of(b)

    assert admin_a.post("/admin/reindex").status_code == 303
    started = files_a.read()
    assert started.active and started.id

    # B sees A's job, and refuses a second one naming it.
    seen = admin_b.get("/admin/reindex/status").get_json()["job"]
    assert seen["id"] == started.id and seen["active"]
    refused = admin_b.post("/admin/reindex", follow_redirects=True).get_data(as_text=True)
    assert started.id in refused and "only one reindex runs at a time" in refused

    results: list[dict[str, str]] = []
    during: list[bool] = []  # whether the job was still running after each upload

    def take_uploads() -> None:
        for i in range(UPLOADS):
            page = upload(admin_b, {f"b{i}.jpg": jpeg(100 + i)}).get_data(as_text=True)
            results.append(outcomes(page))
            during.append(files_b.read().active)

    uploader = threading.Thread(target=take_uploads)
    uploader.start()
    progress_seen = wait_for_job(
        files_b, timeout=JOB_TIMEOUT, until=lambda s: s.phase != "queued" or not s.active
    )
    uploader.join(JOB_TIMEOUT)
    done = wait_for_job(files_b, timeout=JOB_TIMEOUT)

    assert progress_seen.id == started.id
    assert any(during), "no upload happened while the job ran: the test proved nothing"
    assert done.phase == "done", done.error
    wrong = [r for i, r in enumerate(results) if r != {f"b{i}.jpg": "added"}]
    assert len(results) == UPLOADS and not wrong, wrong
    with a.app_context():
        from app.extensions import serving

        store = serving().store
        assert store.resolve() == done.new_collection
        wait_until(
            lambda: store.count(done.new_collection) == size + UPLOADS,
            60,
            "every upload in the new collection",
        )
        sources = {
            row.metadata.get("source") for row in store.iterate(collection=done.new_collection)
        }
    assert {f"b{i}.jpg" for i in range(UPLOADS)} <= sources


@pytest.mark.slow
def test_killing_a_job_on_a_releases_the_deployment_lock_within_the_lease(
    two_servers, tmp_path: Path, photos, monkeypatch
) -> None:
    a, b = two_servers
    fill_gallery(a, tmp_path, photos, extra=12)
    admin_a = admin(a)
    files_b = files_of(b)
    monkeypatch.setattr(launch, "job_command", held_in("encoding"))
    assert admin_a.post("/admin/reindex").status_code == 303
    held = wait_for_job(files_b, timeout=JOB_TIMEOUT, until=lambda s: s.phase == "encoding")
    with b.app_context():
        with pytest.raises(Exception, match=held.id):
            coordination(b).take_job_lock(files_b, {})

    os.kill(held.pid, signal.SIGKILL)
    killed = time.monotonic()
    with b.app_context():
        lock = wait_until(lambda: _try_lock(b, files_b), LEASE * 5, "the lock to lapse")
    lapsed = time.monotonic() - killed
    try:
        assert lapsed <= LEASE + 1.5, f"the lock lapsed {lapsed:.1f} s after the kill"
        state = files_b.read()
        assert state.id == held.id and state.phase == "encoding"  # ours now: not its lock
    finally:
        lock.release()
    state = files_b.read()
    assert state.phase == "failed" and "stopped unexpectedly" in state.error


def _try_lock(app, files: JobFiles):  # type: ignore[no-untyped-def]
    from app.jobs.state import JobRunning

    try:
        return coordination(app).take_job_lock(files, {})
    except JobRunning:
        return None
