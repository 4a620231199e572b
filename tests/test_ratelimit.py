"""Rate limits: per key (or address) and scope, 429 + Retry-After in our error format,
counted across workers (two apps in process, two real gunicorn workers, Redis)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import uuid
from pathlib import Path

import pytest
from werkzeug.security import generate_password_hash

from tests.helpers import wait_until
from tests.servers import HOST, Gunicorn, fetch, free_port, stop_process


@pytest.fixture
def limited(make_app, collection_name):  # type: ignore[no-untyped-def]
    """Apps (workers) sharing one instance folder and key collection, 3 searches a minute."""

    def make(**overrides):  # type: ignore[no-untyped-def]
        settings = {
            "API_KEYS_COLLECTION": f"{collection_name}_keys",
            "RATELIMIT_SEARCH": "3/minute",
            "RATELIMIT_MANAGE": "2/minute",
        }
        return make_app(**{**settings, **overrides})

    return make


def make_key(app, name: str, scope: str = "manage") -> str:  # type: ignore[no-untyped-def]
    from app.apikeys.auth import key_store

    with app.app_context():
        return key_store().create(name, scope)[1]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_over_the_limit_answers_429_with_retry_after_in_our_error_format(limited) -> None:
    client = limited().test_client()
    assert [client.get("/api/labels").status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get("/api/labels")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json["error"]["status"] == 429
    assert "3 per 60 s" in refused.json["error"]["message"]
    assert client.get("/api/health").status_code == 200  # health is never limited


def test_each_key_and_each_scope_has_its_own_budget(limited) -> None:
    app = limited()
    first, second = make_key(app, "one"), make_key(app, "two")
    client = app.test_client()
    for _ in range(3):
        assert client.get("/api/labels", headers=auth(first)).status_code == 200
    assert client.get("/api/labels", headers=auth(first)).status_code == 429
    assert client.get("/api/labels", headers=auth(second)).status_code == 200
    assert client.get("/api/labels").status_code == 200  # no key: counted by address
    # Management calls have their own limit (2 a minute).
    assert [client.get("/api/reindex", headers=auth(first)).status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]


def test_two_workers_share_the_count(limited) -> None:
    """Two app instances on one instance folder stand for two workers of a host."""
    one, two = limited(), limited()
    statuses = [app.test_client().get("/api/labels").status_code for app in (one, two) * 3]
    assert statuses == [200, 200, 200, 429, 429, 429]


def test_a_malformed_limit_stops_the_app_at_start(make_app) -> None:
    with pytest.raises(ValueError, match="RATELIMIT_SEARCH"):
        make_app(RATELIMIT_SEARCH="lots")


@pytest.fixture
def redis_uri(tmp_path: Path):  # type: ignore[no-untyped-def]
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [
            executable,
            "--port",
            str(port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(host=HOST, port=port)

    def ready() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    wait_until(ready, 20, "redis-server to answer")
    yield f"redis://{HOST}:{port}"
    stop_process(process)


def test_counters_in_redis_are_shared_too(limited, redis_uri: str) -> None:
    one, two = limited(RATELIMIT_STORAGE=redis_uri), limited(RATELIMIT_STORAGE=redis_uri)
    statuses = [app.test_client().get("/api/labels").status_code for app in (one, two) * 3]
    assert statuses == [200, 200, 200, 429, 429, 429]


def test_a_limiter_storage_outage_lets_requests_through(limited) -> None:
    app = limited(RATELIMIT_STORAGE=f"redis://{HOST}:{free_port()}")  # nothing listens
    assert app.test_client().get("/api/labels").status_code == 200


@pytest.mark.slow
def test_the_limit_and_the_metrics_hold_across_two_gunicorn_workers(
    tmp_path: Path, tiny_model_dir: Path, photos
) -> None:
    from app.vectors.lite_server import stop_server

    instance = tmp_path / "instance"
    server = Gunicorn(
        {
            "LOOKALIKE_MODEL": str(tiny_model_dir),
            "LOOKALIKE_INSTANCE_PATH": str(instance),
            "LOOKALIKE_MILVUS_URI": "milvus.db",
            "LOOKALIKE_COLLECTION": f"rl{uuid.uuid4().hex[:8]}",
            "LOOKALIKE_SECRET_KEY": uuid.uuid4().hex,
            "LOOKALIKE_ADMIN_PASSWORD_HASH": generate_password_hash("unused-password"),
            "LOOKALIKE_RATELIMIT_SEARCH": "10/minute",
            "GUNICORN_WORKERS": "2",
            "GUNICORN_THREADS": "4",
        },
        log=tmp_path / "gunicorn.log",
    )
    try:
        server.start()
        made = server.flask("apikey", "create", "--name", "shop", "--scope", "search")
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip().splitlines()[0]
        statuses: list[int] = []
        lock = threading.Lock()

        def client() -> None:
            for _ in range(5):
                reply = fetch(server.url + "/api/labels", headers=auth(token))
                with lock:
                    statuses.append(reply.status)

        threads = [threading.Thread(target=client) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        metrics = fetch(server.url + "/metrics").body.decode()
        log = (tmp_path / "gunicorn.log").read_text()
    finally:
        server.stop()
        stop_server(instance / "milvus.db")
    served_by = set(re.findall(r'"GET /api/labels HTTP/1.1" \d+ .* worker=<?(\d+)', log))
    assert len(served_by) == 2, f"not both workers served: {served_by}\n{log[-3000:]}"
    assert sorted(statuses) == [200] * 10 + [429] * 20, json.dumps(statuses)
    # /metrics sums every worker's samples (prometheus multiprocess mode).
    from tests.test_metrics import sample

    route = {"route": "/api/labels", "method": "GET"}
    assert sample(metrics, "lookalike_requests_total", status="200", **route) == 10
    assert sample(metrics, "lookalike_requests_total", status="429", **route) == 20
    assert sample(metrics, "lookalike_rate_limited_total", scope="search") == 20
