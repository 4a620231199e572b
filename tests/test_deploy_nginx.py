"""Production serving: real nginx (nginx/lookalike.conf.template) in front of real gunicorn.

gunicorn runs gunicorn.conf.py with two workers on the embedded default, so
the workers and the CLI share one Milvus Lite server, as documented.
"""

from __future__ import annotations

import gzip
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.config import Config
from tests.servers import (
    NGINX_TEMPLATE,
    Gunicorn,
    Nginx,
    fetch,
    free_port,
    multipart,
    nginx_executable,
    template_variables,
)

ONE_YEAR = 365 * 24 * 3600


@dataclass
class Stack:
    gunicorn: Gunicorn
    nginx: Nginx
    gallery_log: str

    @property
    def url(self) -> str:
        return self.nginx.url


@pytest.fixture(scope="module")
def nginx_bin() -> str:
    executable = nginx_executable()
    if executable is None:
        pytest.skip("nginx is not installed: `apt-get install -y --no-install-recommends nginx`.")
    return executable


@pytest.fixture(scope="module")
def stack(nginx_bin: str, tiny_model_dir: Path, photos: dict[str, bytes],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from app.vectors.lite_server import stop_server

    root = tmp_path_factory.mktemp("stack")
    gallery = root / "gallery"
    gallery.mkdir()
    for name in ("astronaut", "coffee", "rocket"):
        (gallery / f"{name}.jpg").write_bytes(photos[name])
    instance = root / "instance"
    app = Gunicorn({
        "LOOKALIKE_MODEL": str(tiny_model_dir),
        "LOOKALIKE_INSTANCE_PATH": str(instance),
        "LOOKALIKE_MILVUS_URI": "milvus.db",  # Milvus Lite under instance/
        "LOOKALIKE_COLLECTION": f"t{uuid.uuid4().hex[:12]}",
        "LOOKALIKE_SECRET_KEY": uuid.uuid4().hex,
        "LOOKALIKE_BATCH_SIZE": "4",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "2",
        "LOOKALIKE_PROXY_FIX": "1",  # as in compose (app/proxy.py, once wired)
    }, log=root / "gunicorn.log")
    proxy = Nginx(nginx_bin, root / "nginx", upstream=f"127.0.0.1:{app.port}")
    try:
        app.start()
        added = app.flask("gallery", "add", str(gallery))
        assert added.returncode == 0, added.stdout + added.stderr
        proxy.start()
        yield Stack(app, proxy, added.stdout)
    finally:
        proxy.stop()
        app.stop()
        stop_server(instance / "milvus.db")


def search(stack: Stack, data: bytes, path: str = "/api/search", **headers: str):  # type: ignore[no-untyped-def]
    body, content_type = multipart({"k": "3"}, {"image": ("query.jpg", data)})
    return fetch(stack.url + path, method="POST", body=body,
                 headers={"Content-Type": content_type, **headers})


# -- without servers: the template itself ----------------------------------------------


def test_the_upload_limit_matches_the_app() -> None:
    match = re.search(r"client_max_body_size\s+(\d+)m;", NGINX_TEMPLATE.read_text())
    assert match and int(match[1]) * 1024 * 1024 == Config.MAX_CONTENT_LENGTH


def test_the_template_needs_only_the_three_documented_variables() -> None:
    assert template_variables(NGINX_TEMPLATE.read_text()) == {
        "LOOKALIKE_UPSTREAM", "NGINX_LISTEN", "STATIC_ROOT"}


def test_nginx_accepts_the_configuration(nginx_bin: str, tmp_path: Path) -> None:
    checked = Nginx(nginx_bin, tmp_path, upstream="127.0.0.1:9").check()
    assert checked.returncode == 0, checked.stderr


# -- through nginx ----------------------------------------------------------------------


@pytest.mark.slow
def test_search_by_upload_works_through_nginx(stack: Stack, photos: dict[str, bytes]) -> None:
    reply = search(stack, photos["rocket"])
    assert reply.status == 200, reply.body[:500]
    top = json.loads(reply.body)["results"][0]
    assert top["metadata"]["source"] == "rocket.jpg" and top["score"] >= 0.99
    # Links point back through nginx (Host passed on), and the image comes back whole.
    assert top["image_url"].startswith(stack.url + "/images/")
    image = fetch(top["image_url"])
    assert image.status == 200 and image.body == photos["rocket"]


@pytest.mark.slow
def test_thumbnails_keep_the_apps_year_long_cache_headers(stack: Stack, photos) -> None:
    top = json.loads(search(stack, photos["coffee"]).body)["results"][0]
    thumb = fetch(top["thumb_url"])
    assert thumb.status == 200 and thumb.header("Content-Type") == "image/jpeg"
    cache = thumb.header("Cache-Control") or ""
    assert f"max-age={ONE_YEAR}" in cache and "immutable" in cache
    assert thumb.header("ETag")
    assert thumb.all("X-Content-Type-Options") == ["nosniff"]  # one header, not two


@pytest.mark.slow
def test_a_too_large_upload_gets_a_readable_413(stack: Stack) -> None:
    too_large = b"\xff" * (25 * 1024 * 1024)
    api = search(stack, too_large)
    assert api.status == 413 and api.header("Content-Type") == "application/json"
    assert "limit is 20 MB" in json.loads(api.body)["error"]["message"]
    page = search(stack, too_large, path="/search", Accept="text/html")
    assert page.status == 413 and page.header("Content-Type").startswith("text/html")
    assert b"Upload too large" in page.body


@pytest.mark.slow
def test_an_upload_just_under_the_limit_reaches_the_app(stack: Stack) -> None:
    almost = b"\x00" * (Config.MAX_CONTENT_LENGTH - 4096)
    reply = search(stack, almost)
    # Not nginx's 413: the app read it and refused it as not an image.
    assert reply.status == 400, reply.body[:300]
    assert "image" in json.loads(reply.body)["error"]["message"].lower()


@pytest.mark.slow
def test_static_files_are_served_by_nginx_with_long_cache_headers(stack: Stack) -> None:
    plain = fetch(stack.url + "/static/style.css")
    assert plain.status == 200 and plain.header("Content-Type").startswith("text/css")
    assert plain.body == (Path(__file__).parent.parent / "static" / "style.css").read_bytes()
    assert plain.header("Cache-Control") == "max-age=604800"
    assert plain.header("Last-Modified") and plain.header("ETag")
    versioned = fetch(stack.url + "/static/style.css?v=0123456789ab")
    assert versioned.header("Cache-Control") == f"max-age={ONE_YEAR}"


@pytest.mark.slow
def test_html_css_and_js_are_gzipped(stack: Stack) -> None:
    for path in ("/", "/static/style.css", "/static/search.js"):
        reply = fetch(stack.url + path, headers={"Accept-Encoding": "gzip"})
        assert reply.status == 200
        assert reply.header("Content-Encoding") == "gzip", path
        assert "Accept-Encoding" in (reply.header("Vary") or "")
        gzip.decompress(reply.body)


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/", "/api/health", "/static/style.css", "/no-such-page"])
def test_security_headers_are_on_every_answer(stack: Stack, path: str) -> None:
    reply = fetch(stack.url + path)
    csp = reply.header("Content-Security-Policy") or ""
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert reply.header("X-Content-Type-Options") == "nosniff"
    assert reply.header("Referrer-Policy") == "same-origin"
    assert reply.header("X-Frame-Options") == "DENY"
    assert reply.header("Server") == "nginx"  # no version


@pytest.mark.slow
def wait_for_log_line(log: Path, needle: str, timeout: float = 10.0) -> str:
    """gunicorn writes its access line after the answer is sent: wait for it."""
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in log.read_text().splitlines() if needle in line]
        if found or time.monotonic() > deadline:
            assert found, f"{needle} never reached {log}"
            return found[0]
        time.sleep(0.1)  # the poll interval of a wait with a deadline


def test_the_client_address_reaches_gunicorn(stack: Stack) -> None:
    probe = uuid.uuid4().hex
    reply = fetch(f"{stack.url}/api/health?probe={probe}",
                  headers={"X-Forwarded-For": "198.51.100.7"})
    assert reply.status == 200
    line = wait_for_log_line(stack.gunicorn.log, probe)
    # X-Real-IP (nginx's view of the client) first, then the hop, then the chain.
    assert line.startswith("127.0.0.1 127.0.0.1 ")
    assert 'xff="198.51.100.7, 127.0.0.1"' in line


@pytest.mark.slow
def test_two_workers_share_the_lite_server_with_the_cli(stack: Stack) -> None:
    assert "Added 3" in stack.gallery_log
    health = json.loads(fetch(stack.url + "/api/health").body)
    assert health["milvus"]["mode"] == "lite" and health["milvus"]["gallery_size"] == 3
    assert "2 worker(s)" in stack.gunicorn.log.read_text()


@pytest.mark.slow
def test_each_worker_loads_the_model_before_it_takes_traffic(stack: Stack) -> None:
    lines = stack.gunicorn.log.read_text().splitlines()
    loaded = {m[1]: i for i, line in enumerate(lines)
              if (m := re.search(r"\[(\d+)\] \[INFO\] Model .* loaded", line))}
    first_served: dict[str, int] = {}
    for i, line in enumerate(lines):
        if m := re.search(r" worker=<(\d+)>$", line):
            first_served.setdefault(m[1], i)
    assert len(loaded) == 2 and first_served
    assert all(loaded[pid] < i for pid, i in first_served.items())


def test_metrics_stay_inside_and_request_ids_pass_through(stack: Stack) -> None:
    assert fetch(stack.url + "/metrics").status == 404
    assert fetch(stack.gunicorn.url + "/metrics").status == 200  # gunicorn itself, for Prometheus
    reply = fetch(stack.url + "/api/health")
    request_id = reply.header("X-Request-ID") or ""
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)  # nginx's $request_id, kept by the app
    assert request_id in stack.gunicorn.log.read_text(errors="replace")


def test_nginx_answers_503_while_gunicorn_is_down(nginx_bin: str, tmp_path: Path) -> None:
    proxy = Nginx(nginx_bin, tmp_path, upstream=f"127.0.0.1:{free_port()}")
    proxy.start()
    try:
        api = fetch(proxy.url + "/api/health")
        assert api.status == 503 and json.loads(api.body)["error"]["status"] == 503
        page = fetch(proxy.url + "/")
        assert page.status == 503 and b"starting" in page.body
        assert page.header("Content-Security-Policy")
    finally:
        proxy.stop()
