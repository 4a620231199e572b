"""Reindex as the web button runs it: a detached job process beside the app, on Milvus Lite.

Slower than test_reindex.py (each job is a new Python process that imports torch),
so the scenarios are grouped: one end to end with a model change and searches
running throughout, one with cancel, kill -9 and a rerun.
"""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from app.jobs import launch
from app.jobs.state import JobFiles, is_locked, release, try_lock
from tests.admin_fixtures import jpeg, log_in, tiny_model, wait_for_job
from tests.helpers import wait_until

pytest_plugins = ["tests.admin_fixtures"]

JOB_TIMEOUT = 240.0  # a job process imports torch: allow for a busy machine
ALIAS_CHECK_SECONDS = 0.2


@pytest.fixture
def embedded(make_app, admin_hash: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Apps on Milvus Lite under instance/ (the previous embedded default), served by a
    local Lite server that the app and the job process share."""
    from app.vectors.lite_server import stop_server

    def build(**overrides):  # type: ignore[no-untyped-def]
        return make_app(MILVUS_URI="milvus.db", ADMIN_PASSWORD_HASH=admin_hash,
                        ALIAS_CHECK_SECONDS=ALIAS_CHECK_SECONDS, **overrides)

    yield build
    stop_server(tmp_path / "instance" / "milvus.db")


def fill_gallery(app, tmp_path: Path, photos: dict[str, bytes], extra: int) -> int:  # type: ignore[no-untyped-def]
    folder = tmp_path / "to-add"
    folder.mkdir()
    for name, data in photos.items():
        (folder / f"{name}.jpg").write_bytes(data)
    for i in range(extra):
        (folder / f"swatch{i}.jpg").write_bytes(jpeg(i))
    result = app.test_cli_runner().invoke(args=["gallery", "add", str(folder)])
    assert result.exit_code == 0, result.output
    return len(photos) + extra


class Served(NamedTuple):
    size: int
    store: Any  # the serving VectorStore
    old: str  # the collection behind the alias before any reindex
    files: JobFiles
    admin: Any  # a logged-in test client


def served_with_admin(app, tmp_path: Path, photos: dict[str, bytes], extra: int) -> Served:  # type: ignore[no-untyped-def]
    """A filled gallery, its serving store and collection, the job files and an admin."""
    from app.extensions import serving

    size = fill_gallery(app, tmp_path, photos, extra=extra)
    with app.app_context():
        store = serving().store
    admin = app.test_client()
    log_in(admin)
    return Served(size, store, store.resolve(), JobFiles(app.instance_path), admin)


class Searches(threading.Thread):
    """Searches with gallery images, back to back, counting every failed or partial answer."""

    def __init__(self, app, photos: dict[str, bytes], k: int) -> None:  # type: ignore[no-untyped-def]
        super().__init__(daemon=True)
        self.client = app.test_client()
        self.photos = list(photos.items())
        self.k = k
        self.stop = threading.Event()
        self.total = 0
        self.failures: list[str] = []
        self.started: list[float] = []  # when each finished search began (monotonic)

    def since(self, moment: float) -> int:
        """How many searches began at ``moment`` or later and have finished."""
        return sum(1 for t in self.started if t >= moment)

    def run(self) -> None:
        while not self.stop.is_set():
            name, data = self.photos[self.total % len(self.photos)]
            began = time.monotonic()
            response = self.client.post(
                "/api/search", data={"image": (io.BytesIO(data), "q.jpg"), "k": str(self.k)},
                content_type="multipart/form-data")
            self.total += 1
            self.started.append(began)
            if response.status_code != 200:
                text = response.get_data(as_text=True)[:200]
                self.failures.append(f"{response.status_code}: {text}")
                continue
            results = response.get_json()["results"]
            top = results[0]
            if len(results) != self.k:  # a half-built collection would answer with fewer
                self.failures.append(f"{len(results)} results instead of {self.k}")
            elif top["metadata"].get("source") != f"{name}.jpg" or top["score"] < 0.99:
                self.failures.append(f"{name} found {top['metadata']} at {top['score']}")


@pytest.mark.slow
def test_the_button_reindexes_with_a_new_model_in_a_job_process_while_searches_succeed(
    embedded, tmp_path: Path, photos
) -> None:
    size = fill_gallery(embedded(), tmp_path, photos, extra=18)
    new_model = tiny_model(tmp_path / "new-model", hidden=32)
    app = embedded(MODEL=str(new_model))  # configured for the next reindex; serves the old
    files = JobFiles(app.instance_path)
    admin = app.test_client()
    log_in(admin)
    before = admin.get("/api/health").get_json()
    assert before["model"]["dim"] == 64 and before["milvus"]["gallery_size"] == size

    searches = Searches(app, photos, k=size)
    searches.start()
    try:
        started = admin.post("/admin/reindex")
        assert started.status_code == 303
        phases = set()

        def finished() -> bool:
            job = admin.get("/admin/reindex/status").get_json()["job"]
            phases.add(job["phase"])
            return not job["active"]

        wait_until(finished, JOB_TIMEOUT, "the reindex job to finish")
        # Keep searching while the app notices the switch and swaps models: a search
        # begun ALIAS_CHECK_SECONDS after the switch looks at the alias again.
        noticed = time.monotonic() + ALIAS_CHECK_SECONDS
        wait_until(lambda: searches.since(noticed) >= 3, 60, "searches after the swap")
    finally:
        searches.stop.set()
        searches.join(timeout=60)
    state = files.read()
    assert state.phase == "done", (state.error, (files.log.read_text()[-2000:]))
    assert searches.failures == [], searches.failures[:5]
    assert searches.total > 20, searches.total
    after = admin.get("/api/health").get_json()
    assert after["model"] == {**after["model"], "id": str(new_model), "dim": 32}
    assert after["milvus"]["gallery_size"] == size == state.done
    assert {"done"} <= phases and not is_locked(files.lock)


@pytest.mark.slow
def test_cancel_and_kill_leave_the_old_collection_serving_and_a_rerun_succeeds(
    admin_app, tmp_path: Path, photos
) -> None:
    size, store, old, files, admin = served_with_admin(admin_app, tmp_path, photos, extra=0)

    def start_and_hold() -> int:
        """Start from the page while an 'upload' holds the gallery: the job waits to switch."""
        assert admin.post("/admin/reindex").status_code == 303
        wait_for_job(files, timeout=JOB_TIMEOUT,
                     until=lambda s: s.phase == "switching" and "waiting" in s.message)
        assert store.resolve() == old  # everything is ready, nothing has switched
        return files.read().pid

    writer = try_lock(files.gallery_lock, shared=True)
    try:
        start_and_hold()
        refused = admin.post("/admin/reindex", follow_redirects=True).get_data(as_text=True)
        assert "already running (switching" in refused
        assert admin.post("/admin/reindex/cancel").status_code == 303
        cancelled = wait_for_job(files, timeout=60)
        assert cancelled.phase == "cancelled" and store.resolve() == old
        assert store.generations() == [old]  # the half-built collection is gone

        pid = start_and_hold()
        os.kill(pid, signal.SIGKILL)
        killed = wait_for_job(files, timeout=30, until=lambda s: s.phase == "failed")
        assert "stopped unexpectedly" in killed.error
        assert store.resolve() == old and store.count() == size
        page = admin.get("/admin/").get_data(as_text=True)
        assert "stopped unexpectedly" in page and "Start reindex" in page
    finally:
        release(writer)
    leftover = set(store.generations()) - {old}
    assert len(leftover) == 1  # what the killed job had built

    assert admin.post("/admin/reindex").status_code == 303
    done = wait_for_job(files, timeout=JOB_TIMEOUT)
    assert done.phase == "done", done.error
    assert store.resolve() == done.new_collection and store.count() == size
    assert set(store.generations()) == {old, done.new_collection}  # leftover dropped


def held_in(phase: str):  # type: ignore[no-untyped-def]
    """``launch.job_command`` for a job that holds still in ``phase`` (tests/held_job.py)."""
    real = launch.job_command

    def command(*args):  # type: ignore[no-untyped-def]
        python, _, _, *flask_args = real(*args)  # python -m flask ...
        return [python, "-m", "tests.held_job", phase, "120", *flask_args]

    return command


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["encoding", "indexing", "switching"])
def test_a_job_killed_in_any_phase_leaves_search_intact_and_a_rerun_completes(
    embedded, tmp_path: Path, photos, monkeypatch, phase: str
) -> None:
    """Killed half-way through encoding, while the index builds, or just before the
    alias moves: the serving collection is untouched and no search fails."""
    app = embedded()
    size, store, old, files, admin = served_with_admin(app, tmp_path, photos, extra=24)
    searches = Searches(app, photos, k=5)
    searches.start()
    try:
        real_command = launch.job_command
        monkeypatch.setattr(launch, "job_command", held_in(phase))
        assert admin.post("/admin/reindex").status_code == 303
        held = wait_for_job(files, timeout=JOB_TIMEOUT, until=lambda s: s.phase == phase)
        if phase == "encoding":
            wait_until(lambda: files.read().done * 2 >= size, JOB_TIMEOUT, "half the encoding")
            assert 0 < files.read().done < size + 1
        os.kill(held.pid, signal.SIGKILL)
        killed = wait_for_job(files, timeout=30, until=lambda s: s.phase == "failed")
        assert "stopped unexpectedly" in killed.error
        assert store.resolve() == old and store.count() == size
        monkeypatch.setattr(launch, "job_command", real_command)
        assert admin.post("/admin/reindex").status_code == 303
        done = wait_for_job(files, timeout=JOB_TIMEOUT)
        assert done.phase == "done", done.error
        assert store.resolve() == done.new_collection and store.count() == size
        noticed = time.monotonic() + ALIAS_CHECK_SECONDS  # a few on the new collection too
        wait_until(lambda: searches.since(noticed) >= 3, 60, "searches on the new collection")
    finally:
        searches.stop.set()
        searches.join(30)
    assert searches.total > 0 and searches.failures == []
