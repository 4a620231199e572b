"""A real gunicorn serving the app, and an HTTP client that uploads like a browser.

Used by the latency, concurrency and startup suites: the app runs exactly as
deployed (gunicorn, lazy services, readiness through /api/health), and behind
nginx with the production template where nginx is installed.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import ROOT, free_port, rss_mb


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    started: float
    ready_s: float = 0.0
    log: Path = field(default_factory=Path)

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []

    def worker_rss_mb(self) -> list[float]:
        return [rss_mb(pid) for pid in self.workers()]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def serve(env: dict[str, str], *, workers: int, threads: int, torch_threads: int,
          log: Path, timeout: float = 300) -> Server:
    """Start gunicorn and wait until every worker has answered /api/health with 200."""
    port = free_port()
    full_env = {**os.environ, **env, "LOOKALIKE_THREADS": str(torch_threads)}
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
               "--workers", str(workers), "--threads", str(threads), "--timeout", "300",
               "--no-control-socket", "wsgi:app"]
    started = time.perf_counter()
    with open(log, "ab") as handle:
        process = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=handle,
                                   stderr=subprocess.STDOUT)
    server = Server(process, port, started, log=log)
    deadline = time.monotonic() + timeout
    healthy = 0
    while healthy < workers * 2:  # several answers, so that every worker has loaded
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"gunicorn did not become ready; see {log}")
        try:
            status, _ = request(port, "GET", "/api/health", timeout=timeout)
            healthy += status == 200
        except OSError:
            time.sleep(0.2)
    server.ready_s = time.perf_counter() - started
    return server


@contextlib.contextmanager
def behind_nginx(server: Server, prefix: Path) -> Iterator[int | str]:
    """nginx with ``nginx/lookalike.conf.template`` in front of ``server``: its port.

    Yields the reason instead where nginx is not installed. The harness is the
    one the deployment tests run (``tests/servers.py``), so the bench measures
    the configuration those tests check.
    """
    from tests.servers import Nginx, nginx_executable

    executable = nginx_executable()
    if executable is None:
        yield "nginx is not installed (apt-get install -y --no-install-recommends nginx)"
        return
    proxy = Nginx(executable, prefix, upstream=f"127.0.0.1:{server.port}")
    proxy.start()
    try:
        yield proxy.port
    finally:
        proxy.stop()


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type, as a browser sends it."""
    from werkzeug.datastructures import FileStorage
    from werkzeug.test import encode_multipart

    values: dict[str, object] = dict(fields)
    for name, (filename, data) in files.items():
        values[name] = FileStorage(io.BytesIO(data), filename=filename, content_type="image/jpeg")
    boundary, body = encode_multipart(values)
    return body, f"multipart/form-data; boundary={boundary}"


def request(port: int, method: str, path: str, body: bytes | None = None,
            content_type: str | None = None, timeout: float = 60) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": content_type} if content_type else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@functools.lru_cache(maxsize=256)
def _upload(image: bytes, k: int) -> tuple[bytes, str]:
    # Built once per photo: on a 2-core machine the client shares the CPU with
    # the server, so its own work would count against the server's figures.
    return multipart({"k": str(k)}, {"image": ("query.jpg", image)})


def search(port: int, image: bytes, k: int = 10) -> tuple[int, float, dict[str, Any]]:
    """One upload search: (status, client wall ms, response JSON)."""
    body, content_type = _upload(image, k)
    start = time.perf_counter()
    status, payload = request(port, "POST", "/api/search", body, content_type)
    wall = (time.perf_counter() - start) * 1000
    try:
        data = json.loads(payload)
    except ValueError:
        data = {}
    return status, wall, data
