"""Load: 2,000+ searches from 8 clients through nginx and gunicorn, mixed with
uploads and a reindex. Zero 5xx, zero lost uploads; p95 latency is reported.

Bounded in count and time, loopback only. Without nginx it goes to gunicorn
directly (and says so in the report).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from werkzeug.security import generate_password_hash

from app.gallery.imaging import content_hash
from tests.admin_fixtures import jpeg
from tests.helpers import wait_until
from tests.servers import Gunicorn, Nginx, fetch, multipart, nginx_executable

SEARCHES_PER_CLIENT = 250
CLIENTS = 8
UPLOADS = 24
PASSWORD = "load-test-password"
TIME_LIMIT = 900.0


class Browser:
    """A logged-in admin over plain HTTP: session cookie and CSRF token."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies: dict[str, str] = {}

    def request(self, path: str, *, method: str = "GET", body: bytes | None = None,
                content_type: str | None = None):  # type: ignore[no-untyped-def]
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if content_type:
            headers["Content-Type"] = content_type
        reply = fetch(self.base + path, method=method, body=body, headers=headers, timeout=300)
        for value in reply.all("Set-Cookie"):
            name, _, rest = value.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        return reply

    def token(self, path: str) -> str:
        page = self.request(path).body.decode()
        return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)[1]  # type: ignore[index]

    def post(self, path: str, fields: dict[str, str],
             files: dict[str, tuple[str, bytes]] | None = None,
             token_from: str = "/admin/"):  # type: ignore[no-untyped-def]
        token = self.token(token_from)
        body, content_type = multipart({"csrf_token": token, **fields}, files or {})
        return self.request(path, method="POST", body=body, content_type=content_type)


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int, seconds: float) -> None:
        with self.lock:
            self.latencies.append(seconds * 1000)
            self.statuses[status] = self.statuses.get(status, 0) + 1


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


@pytest.mark.slow
def test_searches_uploads_and_a_reindex_under_load(
    tiny_model_dir: Path, photos, tmp_path: Path
) -> None:
    from app.vectors.lite_server import stop_server

    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for name, data in photos.items():
        (gallery / f"{name}.jpg").write_bytes(data)
    for i in range(40):
        (gallery / f"swatch{i}.jpg").write_bytes(jpeg(1000 + i))
    instance = tmp_path / "instance"
    app = Gunicorn({
        "LOOKALIKE_MODEL": str(tiny_model_dir),
        "LOOKALIKE_INSTANCE_PATH": str(instance),
        "LOOKALIKE_MILVUS_URI": "milvus.db",  # Milvus Lite under instance/
        "LOOKALIKE_COLLECTION": f"load{uuid.uuid4().hex[:8]}",
        "LOOKALIKE_SECRET_KEY": uuid.uuid4().hex,
        "LOOKALIKE_ADMIN_PASSWORD_HASH": generate_password_hash(PASSWORD),
        "LOOKALIKE_ALIAS_CHECK_SECONDS": "0.5",
        "LOOKALIKE_BATCH_SIZE": "8",
        "LOOKALIKE_PROXY_FIX": "1",
        "LOOKALIKE_RATELIMIT_SEARCH": "",  # 8 clients on one address measure load, not limits
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "4",
    }, log=tmp_path / "gunicorn.log")
    executable = nginx_executable()
    proxy = Nginx(executable, tmp_path / "nginx",
                  upstream=f"127.0.0.1:{app.port}") if executable else None
    try:
        app.start()
        added = app.flask("gallery", "add", str(gallery))
        assert added.returncode == 0, added.stdout + added.stderr
        base = app.url
        if proxy:
            proxy.start()
            base = proxy.url
        report = run_load(base, app, photos)
    finally:
        if proxy:
            proxy.stop()
        app.stop()
        stop_server(instance / "milvus.db")
    report["through"] = "nginx -> gunicorn" if proxy else "gunicorn (nginx not installed)"
    print("\nLOAD REPORT " + json.dumps(report))
    (tmp_path / "load-report.json").write_text(json.dumps(report, indent=2))
    assert report["searches"] >= CLIENTS * SEARCHES_PER_CLIENT
    assert report["server_errors"] == 0, report["statuses"]
    assert report["lost_uploads"] == [], report
    assert report["reindex"] == "done", report


def run_load(base: str, app: Gunicorn, photos: dict[str, bytes]) -> dict:  # type: ignore[type-arg]
    admin = Browser(base)
    login = admin.post("/admin/login", {"username": "admin", "password": PASSWORD},
                       token_from="/admin/login")
    assert login.status in (302, 303), login.body[:300]
    searches, uploads = Tally(), Tally()
    queries = list(photos.values())
    deadline = time.monotonic() + TIME_LIMIT

    def search_client(offset: int) -> None:
        for i in range(SEARCHES_PER_CLIENT):
            if time.monotonic() > deadline:
                return
            query = queries[(offset + i) % len(queries)]
            body, content_type = multipart({"k": "5"}, {"image": ("q.jpg", query)})
            start = time.perf_counter()
            try:
                reply = fetch(base + "/api/search", method="POST", body=body,
                              headers={"Content-Type": content_type}, timeout=120)
                status = reply.status
            except OSError:
                status = 599  # connection reset or refused: as bad as a 5xx
            searches.add(status, time.perf_counter() - start)

    uploaded: list[str] = []

    def upload_client() -> None:
        uploader = Browser(base)
        uploader.cookies = dict(admin.cookies)
        for i in range(UPLOADS):
            data = jpeg(5000 + i, size=(80, 64))
            start = time.perf_counter()
            reply = uploader.post("/admin/gallery/upload", {}, {"files": (f"new{i}.jpg", data)},
                                  token_from="/admin/gallery")
            uploads.add(reply.status, time.perf_counter() - start)
            if reply.status == 200 and b"added" in reply.body:
                uploaded.append(content_hash(data))
            time.sleep(0.2)  # paces the uploads across the run: load shape, not synchronisation

    threads = [threading.Thread(target=search_client, args=(n * 3,)) for n in range(CLIENTS)]
    threads.append(threading.Thread(target=upload_client))
    for thread in threads:
        thread.start()
    # Start the reindex once searches and uploads are under way.
    wait_until(lambda: len(searches.latencies) >= CLIENTS * 5 and uploads.latencies, 120,
               "searches and an upload to be under way")
    started = admin.post("/admin/reindex", {})
    assert started.status in (302, 303), started.body[:300]
    for thread in threads:
        thread.join(TIME_LIMIT)
    reindex = wait_for_reindex(base, admin)
    lost = [h for h in uploaded if fetch(f"{base}/api/search?key={h}.jpg&k=1").status != 200]
    return {
        "searches": len(searches.latencies),
        "statuses": searches.statuses,
        "server_errors": sum(n for s, n in searches.statuses.items() if s >= 500)
        + sum(n for s, n in uploads.statuses.items() if s >= 500),
        "search_p50_ms": round(percentile(searches.latencies, 50), 1),
        "search_p95_ms": round(percentile(searches.latencies, 95), 1),
        "uploads": len(uploads.latencies),
        "upload_statuses": uploads.statuses,
        "uploads_added": len(uploaded),
        "lost_uploads": lost,
        "reindex": reindex,
    }


def wait_for_reindex(base: str, admin: Browser, timeout: float = 300.0) -> str:
    def ended() -> str:
        state = json.loads(admin.request("/admin/reindex/status").body)
        phase = (state.get("job") or state).get("phase", "")
        return phase if phase in ("done", "failed", "cancelled") else ""

    return wait_until(ended, timeout, "the reindex to end", interval=0.5)
