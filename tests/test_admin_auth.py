"""Admin access: login on every route, hashed passwords, rate limit, CSRF, sessions."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from werkzeug.security import check_password_hash

from tests.admin_fixtures import PASSWORD, log_in

pytest_plugins = ["tests.admin_fixtures"]

ID = "a" * 64


def admin_rules(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Every (method, url) of the admin blueprints, with sample values for parameters."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in ("admin", "admin_sources") \
                or rule.endpoint == "admin.login":
            continue
        url = rule.rule.replace("<id_>", ID).replace("<int:source_id>", "1")
        found += [(method, url) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return found


def test_every_admin_route_requires_a_login_for_get_and_post(admin_app) -> None:
    client = admin_app.test_client()
    rules = admin_rules(admin_app)
    assert {m for m, _ in rules} == {"GET", "POST"} and len(rules) >= 12
    for method, url in rules:
        response = client.open(url, method=method)
        if url.endswith("/status"):
            assert response.status_code == 401, url
        else:
            assert response.status_code == 302, (method, url)
            assert response.headers["Location"].startswith("/admin/login"), (method, url)


def test_a_wrong_password_or_user_is_rejected(admin_app) -> None:
    client = admin_app.test_client()
    wrong = client.post("/admin/login", data={"username": "admin", "password": "nope"})
    assert wrong.status_code == 401 and b"Wrong user name or password" in wrong.data
    other_user = client.post("/admin/login", data={"username": "root", "password": PASSWORD})
    assert other_user.status_code == 401
    assert client.get("/admin/").status_code == 302


def test_a_login_opens_the_admin_pages_and_logout_closes_them(admin_app) -> None:
    client = admin_app.test_client()
    response = log_in(client)
    assert response.headers["Location"] == "/admin/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/admin/").status_code == 200
    assert client.post("/admin/logout").status_code == 302
    assert client.get("/admin/").status_code == 302


def test_the_login_returns_to_the_page_asked_for_but_never_off_site(admin_app) -> None:
    client = admin_app.test_client()
    assert client.get("/admin/gallery").headers["Location"] == "/admin/login?next=/admin/gallery"
    back = client.post("/admin/login?next=/admin/gallery",
                       data={"username": "admin", "password": PASSWORD})
    assert back.headers["Location"] == "/admin/gallery"
    client.post("/admin/logout")
    away = client.post("/admin/login?next=//evil.example/admin",
                       data={"username": "admin", "password": PASSWORD})
    assert away.headers["Location"] == "/admin/"


def test_repeated_failed_logins_are_rate_limited(make_app, admin_hash: str) -> None:
    app = make_app(ADMIN_PASSWORD_HASH=admin_hash, ADMIN_LOGIN_ATTEMPTS=3)
    client = app.test_client()
    for _ in range(3):
        wrong = client.post("/admin/login", data={"username": "admin", "password": "x"})
        assert wrong.status_code == 401
    limited = client.post("/admin/login", data={"username": "admin", "password": PASSWORD})
    assert limited.status_code == 429 and b"Too many failed logins" in limited.data
    other_ip = client.post("/admin/login", data={"username": "admin", "password": PASSWORD},
                           environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert other_ip.status_code == 302


def test_a_changed_password_ends_existing_sessions(make_app, admin_hash: str) -> None:
    from werkzeug.security import generate_password_hash

    app = make_app(ADMIN_PASSWORD_HASH=admin_hash)
    client = app.test_client()
    log_in(client)
    app.config["ADMIN_PASSWORD_HASH"] = generate_password_hash("another password entirely")
    assert client.get("/admin/").status_code == 302


def test_csrf_is_enforced_on_admin_forms_outside_tests(make_app, admin_hash: str) -> None:
    app = make_app(ADMIN_PASSWORD_HASH=admin_hash, WTF_CSRF_ENABLED=True, TESTING=False)
    client = app.test_client()
    no_token = client.post("/admin/login", data={"username": "admin", "password": PASSWORD})
    assert no_token.status_code == 400 and b"Form expired" in no_token.data
    page = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    logged_in = client.post("/admin/login", data={"username": "admin", "password": PASSWORD,
                                                  "csrf_token": token})
    assert logged_in.status_code == 302
    for url in ("/admin/reindex", "/admin/reindex/cancel", "/admin/logout",
                f"/admin/gallery/{ID}/delete"):
        assert client.post(url).status_code == 400, url
    assert client.get("/admin/").status_code == 200  # still logged in: nothing happened


def test_production_config_refuses_to_start_without_a_password_hash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from app import create_app
    from app.config import ProductionConfig

    monkeypatch.setenv("LOOKALIKE_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("LOOKALIKE_SECRET_KEY", "a-long-random-production-secret-" + "x" * 16)
    with pytest.raises(RuntimeError, match="LOOKALIKE_ADMIN_PASSWORD_HASH"):
        create_app(ProductionConfig)
    monkeypatch.setenv("LOOKALIKE_ADMIN_PASSWORD_HASH", "plain text, not a hash")
    with pytest.raises(RuntimeError, match="not a password hash"):
        create_app(ProductionConfig)


def test_the_embedded_default_makes_one_password_once_and_keeps_only_its_hash(
    make_app, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    client = app.test_client()
    with caplog.at_level(logging.WARNING):
        client.get("/admin/login")
    password = re.search(r"password (\S+)\n", caplog.text).group(1)
    stored = Path(app.instance_path) / "admin-password.hash"
    assert stored.stat().st_mode & 0o777 == 0o600
    kept = stored.read_text().strip()
    assert password not in kept and check_password_hash(kept, password)
    caplog.clear()
    make_app().test_client().get("/admin/login")  # another worker: same file, nothing printed
    assert "password" not in caplog.text
    log_in(client, password=password)


def test_hash_password_prints_a_hash_of_the_typed_password(runner) -> None:
    result = runner.invoke(args=["admin", "hash-password"],
                           input="s3cret-passphrase\ns3cret-passphrase\n")
    assert result.exit_code == 0, result.output
    hashed = next(line for line in result.output.splitlines() if line.startswith("scrypt:"))
    assert check_password_hash(hashed, "s3cret-passphrase")
    mismatch = runner.invoke(args=["admin", "hash-password"],
                             input="one-passphrase\nother-passphrase\n")
    assert mismatch.exit_code != 0
