"""Web security: headers on every answer, production secrets, nothing served inline."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.web.security import CONTENT_SECURITY_POLICY, InsecureConfig


@pytest.mark.parametrize(
    "url", ["/", "/api/health", "/nowhere", "/static/style.css", "/admin/login"])
def test_security_headers_are_on_every_answer(client, url: str) -> None:
    response = client.get(url)
    response.close()  # static files are streamed from an open file
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_pages_carry_no_inline_script_or_style(client) -> None:
    import re

    templates = Path(__file__).resolve().parent.parent / "templates"
    for template in templates.rglob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), template
        assert " style=" not in text and "<style" not in text, template
        assert not re.search(r"\son[a-z]+=", text), template  # no inline event handlers


@pytest.mark.parametrize("key", ["", "dev-only-not-secret", "short"])
def test_production_refuses_a_weak_secret_key(monkeypatch, tmp_path: Path, key: str) -> None:
    from app import create_app
    from app.config import ProductionConfig

    monkeypatch.setenv("LOOKALIKE_INSTANCE_PATH", str(tmp_path))
    if key:
        monkeypatch.setenv("LOOKALIKE_SECRET_KEY", key)
    with pytest.raises(InsecureConfig, match="LOOKALIKE_SECRET_KEY"):
        create_app(ProductionConfig)


def test_the_config_is_chosen_by_name() -> None:
    from app.config import Config, ProductionConfig, config_class

    assert config_class("") is Config and config_class("Production") is ProductionConfig
    with pytest.raises(SystemExit, match="LOOKALIKE_CONFIG"):
        config_class("staging")


def test_production_sets_a_secure_session_cookie() -> None:
    from app.config import Config, ProductionConfig

    assert ProductionConfig.SESSION_COOKIE_SECURE is True
    assert Config.SESSION_COOKIE_HTTPONLY is True and Config.SESSION_COOKIE_SAMESITE == "Lax"
