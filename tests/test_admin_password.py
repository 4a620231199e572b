"""The embedded default's generated admin password: shown by gunicorn's start while it
is still the password, whoever made it; ``admin reset-password`` replaces it."""

from __future__ import annotations

import logging
import runpy
import types
from pathlib import Path

from app.admin import first_password
from tests.admin_fixtures import log_in

ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ["tests.admin_fixtures"]


def shown_at_start(instance: Path, monkeypatch, caplog) -> str:  # type: ignore[no-untyped-def]
    """What gunicorn.conf.py's when_ready prints about the password for ``instance``."""
    monkeypatch.setenv("LOOKALIKE_INSTANCE_PATH", str(instance))
    # The config sets this for gunicorn's workers; monkeypatch takes it back after
    # the test, so later in-process tests keep the process's own metrics registry.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(instance / "prometheus"))
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gunicorn.test"):
        conf["show_generated_password"](
            types.SimpleNamespace(log=logging.getLogger("gunicorn.test"))
        )
    return caplog.text


def test_a_password_made_by_another_process_is_shown_when_the_server_starts(
    make_app, monkeypatch, caplog
) -> None:
    app = make_app()
    app.test_client().get("/admin/login")  # the first process: a worker, or a CLI command
    instance = Path(app.instance_path)
    password = first_password.pending(instance)
    assert password and (instance / "admin-password.txt").stat().st_mode & 0o777 == 0o600
    shown = shown_at_start(instance, monkeypatch, caplog)
    assert f"password {password}" in shown and "reset-password" in shown
    log_in(app.test_client(), password=password)


def test_reset_password_prints_a_new_one_once_and_ends_the_old(
    make_app, monkeypatch, caplog
) -> None:
    app = make_app()
    app.test_client().get("/admin/login")
    instance = Path(app.instance_path)
    old = first_password.pending(instance)
    admin = app.test_client()
    log_in(admin, password=old)
    result = app.test_cli_runner().invoke(args=["admin", "reset-password"])
    assert result.exit_code == 0, result.output
    new = result.output.split("'admin': ")[1].split()[0]
    assert new != old and new not in (instance / "admin-password.hash").read_text()
    assert admin.get("/admin/").status_code == 302  # the old session ended
    client = app.test_client()
    bad = client.post("/admin/login", data={"username": "admin", "password": old})
    assert bad.status_code == 401
    log_in(client, password=new)
    assert first_password.pending(instance) is None
    assert "password" not in shown_at_start(instance, monkeypatch, caplog)


def test_reset_password_refuses_when_the_hash_is_configured(make_app, admin_hash) -> None:
    app = make_app(ADMIN_PASSWORD_HASH=admin_hash)
    result = app.test_cli_runner().invoke(args=["admin", "reset-password"])
    assert result.exit_code != 0 and "LOOKALIKE_ADMIN_PASSWORD_HASH is set" in result.output

