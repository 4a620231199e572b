"""Two web servers on one Redis (app/coordination/): shared login limits, audit log,
job state and start-up checks. Each app has its own instance folder, as two hosts would."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from flask import Flask

from app.coordination import check_config, coordination
from app.coordination.local import LocalCoordination
from app.coordination.redis_store import RedisCoordination
from app.galleries.current import job_files
from app.jobs.state import JobState
from tests.admin_fixtures import PASSWORD, log_in
from tests.servers import redis_server  # noqa: F401  (fixture)

pytest_plugins = ["tests.admin_fixtures"]


@pytest.fixture
def two_servers(make_app, admin_hash: str, redis_server: str, tmp_path: Path):  # noqa: F811
    """Apps A and B: separate instance folders, one Milvus, one Redis (own key prefix)."""
    shared = {
        "REDIS_URL": redis_server,
        "REDIS_PREFIX": f"t{uuid.uuid4().hex[:10]}",
        "ADMIN_PASSWORD_HASH": admin_hash,
        "REDIS_LEASE_SECONDS": 3.0,
    }
    a = make_app(INSTANCE_PATH=str(tmp_path / "host-a"), **shared)
    b = make_app(INSTANCE_PATH=str(tmp_path / "host-b"), **shared)
    return a, b


def failed_login(app: Flask) -> int:
    response = app.test_client().post(
        "/admin/login", data={"username": "admin", "password": "wrong"}
    )
    return response.status_code


def test_the_embedded_default_keeps_its_files_without_redis(app) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(coordination(app), LocalCoordination)
    with app.app_context():
        files = job_files(app)
    assert type(files).__name__ == "JobFiles" and files.root == Path(app.instance_path)


def test_with_a_redis_url_both_servers_coordinate_through_redis(two_servers) -> None:  # type: ignore[no-untyped-def]
    a, b = two_servers
    assert isinstance(coordination(a), RedisCoordination)
    assert isinstance(coordination(b), RedisCoordination)


def test_five_failed_logins_spread_over_two_servers_lock_the_address_on_both(two_servers) -> None:  # type: ignore[no-untyped-def]
    a, b = two_servers
    statuses = [failed_login(server) for server in (a, b, a, b, a)]
    assert statuses == [401] * 5
    for server in (a, b):
        client = server.test_client()
        refused = client.post("/admin/login", data={"username": "admin", "password": PASSWORD})
        assert refused.status_code == 429, server.instance_path
        assert "Too many failed logins" in refused.get_data(as_text=True)


def test_a_login_on_one_server_clears_the_failures_for_both(two_servers) -> None:  # type: ignore[no-untyped-def]
    a, b = two_servers
    for server in (a, b, a, b):
        failed_login(server)
    log_in(b.test_client())
    for server in (a, b, a, b):
        failed_login(server)
    log_in(a.test_client())  # four failures since the login: not locked


def test_audit_entries_written_on_one_server_are_shown_on_the_other(two_servers) -> None:  # type: ignore[no-untyped-def]
    a, b = two_servers
    user = f"mallory-{uuid.uuid4().hex[:6]}"
    a.test_client().post("/admin/login", data={"username": user, "password": "guess"})
    admin_b = b.test_client()
    log_in(admin_b)
    page = admin_b.get("/admin/").get_data(as_text=True)
    assert user in page and "login.failed" in page
    assert not (Path(a.instance_path) / "audit.log").exists(), "the audit went to a local file"


def test_a_job_state_written_by_one_server_is_read_by_the_other(two_servers) -> None:  # type: ignore[no-untyped-def]
    a, b = two_servers
    with a.app_context():
        files_a = job_files(a)
        lock = coordination(a).take_job_lock(files_a, {})
    try:
        state = JobState(id="job-on-a", phase="encoding", total=10, done=4, user="alice")
        files_a.write(state)
        admin_b = b.test_client()
        log_in(admin_b)
        seen = admin_b.get("/admin/reindex/status").get_json()["job"]
        assert seen["id"] == "job-on-a" and seen["phase"] == "encoding" and seen["done"] == 4
        refused = admin_b.post("/admin/reindex", follow_redirects=True).get_data(as_text=True)
        assert "job-on-a" in refused and "only one reindex runs at a time" in refused
    finally:
        lock.release()


def test_a_job_whose_lock_lapsed_is_shown_as_stopped(two_servers) -> None:  # type: ignore[no-untyped-def]
    a, b = two_servers
    with a.app_context():
        job_files(a).write(JobState(id="ghost", phase="encoding", total=10, done=4))
    with b.app_context():
        state = job_files(b).read()
    assert state.phase == "failed" and "stopped unexpectedly" in state.error


def test_cancel_requested_on_one_server_is_seen_by_the_job_on_the_other(two_servers) -> None:  # type: ignore[no-untyped-def]
    a, b = two_servers
    with a.app_context(), b.app_context():
        job_files(b).request_cancel("job-1")
        assert job_files(a).cancel_requested("job-1")
        assert not job_files(a).cancel_requested("job-2")


def bare_app(**settings: object) -> Flask:
    from app.config import Config

    app = Flask("check")
    app.config.from_object(Config)
    app.config.update(settings)
    return app


def test_redis_without_an_admin_password_hash_is_refused_at_start() -> None:
    with pytest.raises(RuntimeError, match="LOOKALIKE_ADMIN_PASSWORD_HASH"):
        check_config(bare_app(REDIS_URL="redis://127.0.0.1:6379/0"))


def test_a_redis_url_that_is_not_one_is_refused_at_start() -> None:
    with pytest.raises(RuntimeError, match="redis://"):
        check_config(bare_app(REDIS_URL="127.0.0.1:6379", ADMIN_PASSWORD_HASH="scrypt:x"))


@pytest.mark.parametrize("uri", ["http://milvus.internal:19530", "https://10.0.0.5:19530"])
def test_production_on_a_remote_milvus_without_redis_is_refused_at_start(uri: str) -> None:
    with pytest.raises(RuntimeError, match="LOOKALIKE_SINGLE_HOST=true"):
        check_config(bare_app(PRODUCTION=True, MILVUS_URI=uri))


@pytest.mark.parametrize(
    "settings",
    [
        {"SINGLE_HOST": True, "MILVUS_URI": "http://milvus.internal:19530"},
        {
            "REDIS_URL": "redis://redis:6379/0",
            "ADMIN_PASSWORD_HASH": "scrypt:x",
            "MILVUS_URI": "http://milvus.internal:19530",
        },
        {"MILVUS_URI": "http://127.0.0.1:19530"},  # loopback: this host only
        {"MILVUS_URI": ""},  # the embedded default
        {"MILVUS_URI": "milvus.db"},
    ],
)
def test_production_starts_when_one_host_is_certain_or_redis_is_set(settings: dict) -> None:
    check_config(bare_app(PRODUCTION=True, **settings))


def test_the_development_config_is_not_refused_on_a_remote_milvus() -> None:
    check_config(bare_app(MILVUS_URI="http://milvus.internal:19530"))


def test_the_job_lock_names_its_gallery_and_host_in_redis(two_servers) -> None:  # type: ignore[no-untyped-def]
    a, _ = two_servers
    with a.app_context():
        lock = coordination(a).take_job_lock(job_files(a), {})
    try:
        holder = coordination(a).holder()
        assert holder is not None and holder["gallery"] and holder["host"]
        assert json.loads(lock.value)["token"] == holder["token"]
    finally:
        lock.release()
    assert coordination(a).holder() is None


def test_an_unreachable_redis_answers_503_with_a_message_not_a_crash(
    make_app, admin_hash: str
) -> None:  # type: ignore[no-untyped-def]
    from tests.s3server import free_port

    app = make_app(
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        ADMIN_PASSWORD_HASH=admin_hash,
        REDIS_TIMEOUT=1.0,
    )
    response = app.test_client().post(
        "/admin/login", data={"username": "admin", "password": PASSWORD}
    )
    assert response.status_code == 503
    assert "LOOKALIKE_REDIS_URL" in response.get_data(as_text=True)
