"""Reindex on a real Milvus Lite, run in this process: alias moves, counts, failures,
cancel, catch-up of concurrent changes, rollback, one job at a time, model changes."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from app.gallery.keys import original_name
from app.jobs import launch
from app.jobs.state import JobFiles, JobRunning, JobState, acquire, release, try_lock
from tests.admin_fixtures import jpeg, log_in, tiny_model, upload, wait_for_job
from tests.helpers import wait_until

pytest_plugins = ["tests.admin_fixtures"]


@pytest.fixture
def gallery(admin_app, runner_for, gallery_dir: Path):  # type: ignore[no-untyped-def]
    result = runner_for(admin_app).invoke(args=["gallery", "add", str(gallery_dir),
                                                "--label-from-folder"])
    assert result.exit_code == 0, result.output
    return admin_app


@pytest.fixture
def runner_for():  # type: ignore[no-untyped-def]
    return lambda app: app.test_cli_runner()


def store_of(app):  # type: ignore[no-untyped-def]
    from app.extensions import serving

    with app.app_context():
        return serving().store


def reindex(app, kind: str = "reindex", **options) -> JobState:  # type: ignore[no-untyped-def]
    with app.app_context():
        return launch.run_here(app, kind, user="tester", **options)


def rows(store, collection: str) -> dict[str, tuple[str, dict]]:  # type: ignore[no-untyped-def]
    return {e.id: (e.label, e.metadata) for e in store.iterate(collection=collection)}


def search_top(client, data: bytes) -> dict:  # type: ignore[no-untyped-def]
    import io

    response = client.post("/api/search", data={"image": (io.BytesIO(data), "q.jpg"), "k": "1"},
                           content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["results"][0]


def test_a_reindex_moves_the_alias_to_a_full_new_collection_and_keeps_the_old(
    gallery, photos
) -> None:
    store = store_of(gallery)
    old = store.resolve()
    before = rows(store, old)
    state = reindex(gallery)
    assert state.phase == "done", state.error
    new = store.resolve()
    assert new == state.new_collection != old == state.old_collection
    assert rows(store, new) == before  # same images, labels and metadata
    assert (state.total, state.done, state.failed) == (6, 6, 0) and state.rate > 0
    assert store.generations() == [old, new] and store.served_since(old)
    assert search_top(gallery.test_client(), photos["rocket"])["score"] >= 0.99
    files = JobFiles(gallery.instance_path)
    assert files.last_success().id == state.id and not files.read().active
    lines = (Path(gallery.instance_path) / "audit.log").read_text().splitlines()
    audit = [json.loads(line) for line in lines]
    assert audit[-1]["action"] == "reindex.done" and audit[-1]["user"] == "tester"


def test_each_reindex_drops_the_generation_before_the_previous(gallery) -> None:
    store = store_of(gallery)
    first = store.resolve()
    second = reindex(gallery).new_collection
    third = reindex(gallery).new_collection
    assert store.generations() == [second, third] and first not in store.generations()
    assert store.count() == 6


def test_images_that_fail_to_decode_are_reported_and_skipped(gallery) -> None:
    from app.extensions import images

    store = store_of(gallery)
    broken, missing = sorted(store.iterate(), key=lambda e: e.id)[:2]
    with gallery.app_context():
        images().put(original_name(broken.key), b"no longer a jpeg", "image/jpeg")
        images().delete(original_name(missing.key))
    state = reindex(gallery)
    assert state.phase == "done" and (state.done, state.failed) == (6, 2)
    reasons = " ".join(state.failures)
    assert "not an image we can read" in reasons and "missing from the image store" in reasons
    assert store.count() == 4 and store.resolve() == state.new_collection


def test_a_cancelled_reindex_leaves_the_alias_and_drops_its_collection(gallery) -> None:
    store = store_of(gallery)
    old = store.resolve()
    files = JobFiles(gallery.instance_path)

    def cancel_once_encoding(state: JobState) -> None:
        if state.phase == "encoding":
            files.request_cancel(state.id)

    state = reindex(gallery, on_change=cancel_once_encoding, batch_size=1)
    assert state.phase == "cancelled" and "alias was not moved" in state.message
    assert store.resolve() == old and store.generations() == [old]
    assert files.read().phase == "cancelled" and not files.cancel.exists()


def test_a_second_reindex_is_refused_while_one_runs(gallery, admin_hash) -> None:
    files = JobFiles(gallery.instance_path)
    files.write(JobState(id="x", phase="encoding", done=2, total=6, user="alice",
                         started=time.time()))
    fd = acquire(files.lock)  # as a running job holds it
    try:
        with pytest.raises(JobRunning, match="already running"):
            launch.start(gallery, "reindex", user="bob")
        result = gallery.test_cli_runner().invoke(args=["index", "rebuild"])
        assert result.exit_code == 1 and "already running (encoding, 2/6 images" in result.output
        client = gallery.test_client()
        log_in(client)
        page = client.post("/admin/reindex", follow_redirects=True).get_data(as_text=True)
        assert "already running (encoding, 2/6 images, started by alice" in page
    finally:
        release(fd)
    assert files.read().phase == "failed"  # the "job" is gone now: reported, not stuck


def test_a_job_that_died_is_reported_failed_and_the_page_says_so(gallery) -> None:
    files = JobFiles(gallery.instance_path)
    files.write(JobState(id="gone", phase="encoding", total=6, done=3, started=time.time(),
                         pid=999999))
    state = files.read()
    assert state.phase == "failed" and "stopped unexpectedly" in state.error
    client = gallery.test_client()
    log_in(client)
    body = client.get("/admin/reindex/status").get_json()["job"]
    assert body["phase"] == "failed" and not body["active"]
    assert "stopped unexpectedly" in body["error"]
    assert "stopped unexpectedly" in client.get("/admin/").get_data(as_text=True)


def test_changes_made_during_a_reindex_are_carried_over_at_the_switch(gallery, photos) -> None:
    store = store_of(gallery)
    files = JobFiles(gallery.instance_path)
    client = gallery.test_client()
    log_in(client)
    entries = sorted(store.iterate(), key=lambda e: e.id)
    doomed, renamed = entries[0], entries[1]
    writer = try_lock(files.gallery_lock, shared=True)  # an upload that is still running
    result: dict[str, JobState] = {}
    job = threading.Thread(target=lambda: result.setdefault("state", reindex(gallery)))
    job.start()
    try:
        wait_for_job(files, until=lambda s: s.phase == "switching" and "waiting" in s.message)
        upload(client, {"new.jpg": jpeg(7)}, label="late")
        client.post(f"/admin/gallery/{doomed.id}/delete")
        client.post(f"/admin/gallery/{renamed.id}/label", data={"label": "renamed"})
        assert store.resolve() == result.get("state", files.read()).old_collection
    finally:
        release(writer)
    job.join(timeout=120)
    state = result["state"]
    assert state.phase == "done", state.error
    after = rows(store, store.resolve())
    assert len(after) == 6 and doomed.id not in after
    assert after[renamed.id][0] == "renamed" and "late" in {label for label, _ in after.values()}


def test_rollback_returns_to_the_previous_collection_with_images_added_since(gallery) -> None:
    store = store_of(gallery)
    old = store.resolve()
    new = reindex(gallery).new_collection
    client = gallery.test_client()
    log_in(client)
    upload(client, {"later.jpg": jpeg(11)})
    state = reindex(gallery, "rollback")
    assert state.phase == "done", state.error
    assert store.resolve() == old and store.count() == 7
    assert store.generations() == [old, new]  # roll forward stays possible
    page = client.get("/admin/").get_data(as_text=True)
    assert f"to <code>{new}</code>" in page


def test_the_app_serves_with_the_collections_model_until_a_reindex_switches(
    gallery, make_app, admin_hash, tmp_path: Path, photos
) -> None:
    other = tiny_model(tmp_path / "other-model", hidden=32)
    app = make_app(MODEL=str(other), ADMIN_PASSWORD_HASH=admin_hash, ALIAS_CHECK_SECONDS=0.2,
                   REINDEX_NICE=0)
    client = app.test_client()
    log_in(client)
    assert search_top(client, photos["coffee"])["score"] >= 0.99  # still the 64-d collection
    page = client.get("/admin/").get_data(as_text=True)
    assert "differs from the serving model" in page and "64-d" in page
    state = reindex(app)
    assert state.phase == "done" and state.model == str(other)

    def serving_model() -> tuple[str, int]:
        with app.test_request_context():
            from app.extensions import encoder

            return encoder().name, encoder().dim

    # The app looks at the alias again every ALIAS_CHECK_SECONDS, on a request.
    wait_until(lambda: serving_model() == (str(other), 32), 30, "the app to follow the switch")
    assert search_top(client, photos["coffee"])["score"] >= 0.99  # now the 32-d one
    page = client.get("/admin/").get_data(as_text=True)
    assert "differs from the serving model" not in page and "32-d" in page
    # The other app (configured with the first model) follows the switch too.
    assert search_top(gallery.test_client(), photos["coffee"])["score"] >= 0.99


def test_the_cli_rebuild_reports_what_it_did(gallery) -> None:
    result = gallery.test_cli_runner().invoke(args=["index", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "Re-encoded 6 of 6 images (0 skipped)" in result.output
    store = store_of(gallery)
    assert store.resolve() in result.output


def test_a_failure_before_the_switch_leaves_the_old_collection_serving(
    gallery, monkeypatch
) -> None:
    from app.exceptions import VectorStoreUnavailable
    from app.vectors.store import VectorStore

    store = store_of(gallery)
    old = store.resolve()

    def broken(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise VectorStoreUnavailable("Milvus went away during the index build.")

    monkeypatch.setattr(VectorStore, "wait_for_index", broken)
    state = reindex(gallery)
    assert state.phase == "failed" and "went away" in state.error
    monkeypatch.undo()
    assert store.resolve() == old and store.generations() == [old]
    assert reindex(gallery).phase == "done"


def test_state_round_trips_through_json() -> None:
    state = JobState(id="a", phase="encoding", failures=("x: y",), eta_s=3.5)
    assert JobState.from_json(json.loads(json.dumps(state.to_json()))) == state
    assert replace(state, phase="done").active is False


def test_the_switch_drops_a_collection_it_could_not_fill_and_leaves_the_alias(gallery) -> None:  # type: ignore[no-untyped-def]
    from app.extensions import encoder
    from app.jobs.switch import switch_collection
    from app.serving import stamp_of

    store = store_of(gallery)
    serving, generations = store.resolve(), store.generations()
    made: list[str] = []

    def fill(new: str) -> None:
        made.append(new)
        raise OSError("the disk filled up")

    with gallery.app_context(), pytest.raises(OSError, match="disk"):
        switch_collection(store, stamp_of(encoder()), fill,
                          files=JobFiles(gallery.instance_path))
    assert made and made[0] not in store.generations()
    assert store.resolve() == serving and store.generations() == generations
