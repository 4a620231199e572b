"""The embedded default: a local Milvus standalone server per instance folder.

Real servers only: the PyPI ``milvus`` package's server (tests.servers says
where it is found), Milvus Lite for the previous default's instance folders,
and the app under gunicorn with the CLI beside it.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from app.vectors import standalone
from app.vectors.connect import LITE_DIR, STANDALONE_DIR, migrated_marker, open_client
from tests.servers import Gunicorn, fetch, multipart
from tests.test_search import add_gallery, upload

pytestmark = pytest.mark.slow
pytest_plugins = ["tests.admin_fixtures"]


@pytest.fixture(scope="module")
def executable() -> Path:
    found = standalone.find_executable()
    if found is None:
        pytest.skip("milvus-server is not installed (make install, or .ci/install-servers.sh)")
    if not standalone.can_isolate():
        pytest.skip("this machine allows no user namespaces")
    return found


def listening() -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket in this network namespace."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":  # LISTEN
                address, port = local.rsplit(":", 1)
                found.add((address, int(port, 16)))
    return found


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1


def test_two_instances_run_side_by_side_and_listen_on_loopback_only(
    tmp_path: Path, executable: Path
) -> None:
    before = listening()
    dirs = [tmp_path / name / STANDALONE_DIR for name in ("one", "two")]
    try:
        servers = [standalone.ensure_server(d, executable) for d in dirs]
        for server in servers:
            client = open_client(server.uri, timeout=10)[0]
            assert client.get_server_version().startswith("v2.")
            client.close()
        new = listening() - before
        assert {port for _, port in new} >= {s.port for s in servers}
        assert all(address in LOOPBACK for address, _ in new), new
        assert standalone.ensure_server(dirs[0], executable) == servers[0]  # found again
    finally:
        stopped = [standalone.stop_server(d) for d in dirs]
    assert stopped == [True, True]
    assert all(standalone.running_server(d) is None for d in dirs)
    assert not {port for _, port in listening() - before} & {s.port for s in servers}


def test_the_default_starts_serves_and_stops_from_a_clean_instance_folder(
    tmp_path: Path, tiny_model_dir: Path, photos: dict[str, bytes], gallery_dir: Path,
    executable: Path,
) -> None:
    instance = tmp_path / "instance"
    app = Gunicorn({
        "LOOKALIKE_MODEL": str(tiny_model_dir),
        "LOOKALIKE_INSTANCE_PATH": str(instance),
        "LOOKALIKE_COLLECTION": f"t{uuid.uuid4().hex[:12]}",
        "LOOKALIKE_SECRET_KEY": uuid.uuid4().hex,
        "LOOKALIKE_BATCH_SIZE": "4",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "2",
    }, tmp_path / "gunicorn.log")
    try:
        app.start()
        added = app.flask("gallery", "add", str(gallery_dir), "--label-from-folder")
        assert added.returncode == 0, added.stdout + added.stderr
        status = app.flask("index", "status")
        assert status.returncode == 0 and "rows:        6" in status.stdout, status.stdout
        assert "warning" not in status.stdout
        body, content_type = multipart({"k": "3"}, {"image": ("q.jpg", photos["chelsea"])})
        for _ in range(4):  # both workers, most likely
            reply = fetch(app.url + "/api/search", method="POST", body=body,
                          headers={"Content-Type": content_type})
            assert reply.status == 200, reply.body[:300]
            assert json.loads(reply.body)["results"][0]["label"] == "other"
        running = app.flask("milvus", "status")
        assert "Milvus standalone" in running.stdout and "running at" in running.stdout
        assert not (instance / LITE_DIR).exists()  # nothing of the old default
    finally:
        app.stop()
        stopped = app.flask("milvus", "stop")
    assert stopped.stdout.strip() == "stopped", stopped.stdout + stopped.stderr
    assert standalone.running_server(instance / STANDALONE_DIR) is None


def test_a_lite_instance_folder_is_served_with_a_warning_then_migrated_with_nothing_lost(
    make_app, admin_hash: str, tmp_path: Path, gallery_dir: Path, photos: dict[str, bytes],
    executable: Path,
) -> None:
    from app.vectors import lite_server
    from tests.admin_fixtures import log_in

    instance = tmp_path / "instance"
    old = make_app(MILVUS_URI="milvus.db")  # what the previous default made: instance/milvus.db
    add_gallery(old.test_cli_runner(), gallery_dir)
    lite_server.stop_server(instance / LITE_DIR)
    try:
        app = make_app(MILVUS_URI="", ADMIN_PASSWORD_HASH=admin_hash)
        client = app.test_client()
        before = {n: [(r["key"], r["label"]) for r in upload(client, d, k=6).get_json()["results"]]
                  for n, d in photos.items()}
        status = app.test_cli_runner().invoke(args=["index", "status"])
        assert "rows:        6" in status.output and "index migrate --to local" in status.output
        assert standalone.running_server(instance / STANDALONE_DIR) is None  # still on Lite
        log_in(client)
        page = client.get("/admin/").get_data(as_text=True)
        assert 'id="milvus-notice"' in page and "index migrate --to local" in page

        moved = app.test_cli_runner().invoke(args=["index", "migrate", "--to", "local"])
        assert moved.exit_code == 0, moved.output
        assert "Copied 6 rows" in moved.output and "from now on" in moved.output

        fresh = make_app(MILVUS_URI="", ADMIN_PASSWORD_HASH=admin_hash)
        status = fresh.test_cli_runner().invoke(args=["index", "status"])
        assert "rows:        6" in status.output and "warning" not in status.output
        where = fresh.test_cli_runner().invoke(args=["milvus", "status"])
        assert "Milvus standalone" in where.output and "running at" in where.output
        after = {n: [(r["key"], r["label"])
                     for r in upload(fresh.test_client(), d, k=6).get_json()["results"]]
                 for n, d in photos.items()}
        assert after == before
        admin = fresh.test_client()
        log_in(admin)
        assert 'id="milvus-notice"' not in admin.get("/admin/").get_data(as_text=True)
        assert (instance / LITE_DIR).is_dir() and migrated_marker(instance / LITE_DIR).is_file()
        assert lite_server.running_server(instance / LITE_DIR) is None
    finally:
        standalone.stop_server(instance / STANDALONE_DIR)
        lite_server.stop_server(instance / LITE_DIR)


def test_without_the_server_or_user_namespaces_lite_serves_and_says_why(
    make_app, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from app.vectors.connect import local_milvus

    app = make_app(MILVUS_URI="")
    monkeypatch.setattr(standalone, "find_executable", lambda configured="": None)
    missing = local_milvus(app)
    assert missing is not None and missing.kind == "lite" and "make install" in missing.warning
    assert missing.data_dir == tmp_path / "instance" / LITE_DIR

    monkeypatch.setattr(standalone, "find_executable", lambda configured="": Path("/bin/true"))
    monkeypatch.setattr(standalone, "can_isolate", lambda: False)
    closed = local_milvus(app)
    assert closed is not None and closed.kind == "lite" and "user namespaces" in closed.warning

    monkeypatch.setattr(standalone, "can_isolate", lambda: True)
    fine = local_milvus(app)
    assert fine is not None and (fine.kind, fine.warning) == ("standalone", "")
    assert fine.data_dir == tmp_path / "instance" / STANDALONE_DIR
