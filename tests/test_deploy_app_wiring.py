"""The two small pieces the app needs behind nginx: ProxyFix on demand, versioned static URLs."""

from __future__ import annotations

import hashlib
import re

from flask import request, url_for

from app import ROOT
from app.readiness import warm_up
from app.web import assets, proxy

FORWARDED = {"X-Forwarded-For": "203.0.113.9, 127.0.0.1", "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "images.example.org"}


def _echo_app(make_app, **config):  # type: ignore[no-untyped-def]
    app = make_app(**config)
    proxy.init_app(app)

    @app.get("/_echo")
    def echo() -> dict[str, str]:
        return {"addr": request.remote_addr or "", "url": request.url}

    return app


def test_with_proxy_fix_the_app_sees_the_client_behind_nginx(make_app) -> None:  # type: ignore[no-untyped-def]
    app = _echo_app(make_app, PROXY_FIX=1)
    proxy.init_app(app)  # wiring it twice must not count two proxies
    body = app.test_client().get("/_echo", headers=FORWARDED,
                                 environ_base={"REMOTE_ADDR": "127.0.0.1"}).get_json()
    assert body == {"addr": "127.0.0.1", "url": "https://images.example.org/_echo"}
    # The last hop (nginx's own entry) is the one trusted, not what the client claims.


def test_without_proxy_fix_forwarded_headers_are_ignored(make_app) -> None:  # type: ignore[no-untyped-def]
    app = _echo_app(make_app)
    body = app.test_client().get("/_echo", headers=FORWARDED,
                                 environ_base={"REMOTE_ADDR": "10.0.0.5"}).get_json()
    assert body == {"addr": "10.0.0.5", "url": "http://localhost/_echo"}


def test_static_urls_carry_a_hash_of_the_file(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    assets.init_app(app)
    digest = hashlib.sha256((ROOT / "static" / "style.css").read_bytes()).hexdigest()[:12]
    with app.test_request_context():
        assert url_for("static", filename="style.css") == f"/static/style.css?v={digest}"
        assert url_for("static", filename="missing.css") == "/static/missing.css"
    page = app.test_client().get("/").get_data(as_text=True)
    assert re.search(rf'href="/static/style\.css\?v={digest}"', page)


def test_warm_up_loads_the_model_and_reaches_the_index(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    result = warm_up(app)
    assert result.loaded and result.ready, result.problems
    assert "64-d" in result.model
    assert app.extensions["lookalike.encoder"].peek() is not None


def test_warm_up_reports_a_model_that_cannot_load_without_raising(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = warm_up(make_app(MODEL=str(tmp_path / "no-model-here")))
    assert not result.loaded and not result.ready
    assert "could not be loaded" in result.problems[0]


def test_warm_up_reports_milvus_down_without_raising(make_app) -> None:  # type: ignore[no-untyped-def]
    from tests.s3server import free_port

    result = warm_up(make_app(MILVUS_URI=f"http://127.0.0.1:{free_port()}", MILVUS_TIMEOUT=2))
    assert result.loaded and not result.ready
    assert "search index" in result.problems[0]
