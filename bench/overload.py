"""Suite 9 (overload): 64 clients against one worker, with and without load shedding.

Each client sends searches back to back for the run's duration; a poller asks
/api/health twice a second. Reported: accepted throughput, p50/p99 of accepted
searches, the share refused with 503 (shed), any other failure, and the slowest
health answer. ``hammer`` is also what tests/test_overload.py runs, shorter.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import ROOT  # noqa: F401  (the bench package's root, for imports)
from bench.serving import multipart

HEALTH_INTERVAL_S = 0.5
CLIENT_TIMEOUT_S = 300.0


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    accepted: list[float] = field(default_factory=list)  # latencies of 200s
    shed: int = 0  # 503 with Retry-After
    other: dict[str, int] = field(default_factory=dict)  # anything else, by status
    health: list[tuple[int, float]] = field(default_factory=list)

    def add(self, status: int | str, latency: float, retry_after: str | None) -> None:
        with self.lock:
            if status == 200:
                self.accepted.append(latency)
            elif status == 503 and retry_after and retry_after.isdigit():
                self.shed += 1
            else:
                self.other[str(status)] = self.other.get(str(status), 0) + 1


def _call(
    host: str,
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str | None]:
    connection = http.client.HTTPConnection(host, port, timeout=CLIENT_TIMEOUT_S)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("Retry-After")
    finally:
        connection.close()


def hammer(
    host: str,
    port: int,
    images: list[bytes],
    *,
    clients: int = 64,
    seconds: float = 30.0,
    k: int = 5,
) -> dict[str, Any]:
    """Run the overload and return its figures (see the module docstring)."""
    tally = Tally()
    deadline = time.monotonic() + seconds
    bodies = [multipart({"k": str(k)}, {"image": ("q.jpg", image)}) for image in images]

    def client(n: int) -> None:
        i = n
        while time.monotonic() < deadline:
            body, content_type = bodies[i % len(bodies)]
            i += clients
            started = time.perf_counter()
            try:
                status, retry = _call(
                    host, port, "POST", "/api/search", body, {"Content-Type": content_type}
                )
            except OSError as exc:
                status, retry = type(exc).__name__, None
            tally.add(status, time.perf_counter() - started, retry)

    def health() -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                status, _ = _call(host, port, "GET", "/api/health")
            except OSError:
                status = 0
            tally.health.append((status, time.perf_counter() - started))
            time.sleep(HEALTH_INTERVAL_S)  # the poll rate, not a synchronisation

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    threads.append(threading.Thread(target=health))
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + CLIENT_TIMEOUT_S)
    elapsed = time.perf_counter() - started
    return summary(tally, elapsed, clients)


def summary(tally: Tally, elapsed: float, clients: int) -> dict[str, Any]:
    accepted = sorted(tally.accepted)
    total = len(accepted) + tally.shed + sum(tally.other.values())
    health_s = [s for _, s in tally.health]
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": total,
        "accepted": len(accepted),
        "accepted_per_s": round(len(accepted) / elapsed, 1),
        "p50_ms": round(_percentile(accepted, 50) * 1000, 1),
        "p99_ms": round(_percentile(accepted, 99) * 1000, 1),
        "shed": tally.shed,
        "shed_share": round(tally.shed / total, 3) if total else 0.0,
        "other": tally.other,
        "health_checks": len(tally.health),
        "health_failures": sum(1 for status, _ in tally.health if status != 200),
        "health_max_ms": round(max(health_s, default=0.0) * 1000, 1),
    }


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def worker_restarts(log: Path) -> int:
    """Workers gunicorn booted after the first, and timeouts it reported."""
    text = log.read_text(errors="replace")
    return max(0, text.count("Booting worker") - 1) + text.count("WORKER TIMEOUT")


def run(
    workdir: Path,
    *,
    quick: bool,
    model_dir: Path,
    images: list[bytes],
    seconds: float = 30.0,
    bound: float = 1.0,
) -> dict[str, Any]:
    """The overload with shedding (bound seconds) and without, one gunicorn worker each."""
    from werkzeug.security import generate_password_hash

    from app.vectors.lite_server import stop_server
    from tests.servers import HOST, Gunicorn

    out: dict[str, Any] = {"bound_s": bound, "model": str(model_dir)}
    for name, shed_after in (("shedding", bound), ("no_shedding", 0)):
        instance = workdir / f"overload-{name}"
        server = Gunicorn(
            {
                "LOOKALIKE_MODEL": str(model_dir),
                "LOOKALIKE_INSTANCE_PATH": str(instance),
                "LOOKALIKE_MILVUS_URI": "milvus.db",
                "LOOKALIKE_COLLECTION": f"overload_{name}",
                "LOOKALIKE_RATELIMIT_SEARCH": "",
                "LOOKALIKE_SHED_AFTER_SECONDS": str(shed_after),
                "LOOKALIKE_ADMIN_PASSWORD_HASH": generate_password_hash("unused-password"),
                "GUNICORN_WORKERS": "1",
                "GUNICORN_THREADS": "4",
                "GUNICORN_MAX_REQUESTS": "0",  # a recycled worker reloads its model: not overload
            },
            log=workdir / f"gunicorn-overload-{name}.log",
        )
        try:
            server.start()
            added = server.flask("gallery", "add", *_gallery_files(workdir, images))
            if added.returncode != 0:
                raise RuntimeError(added.stdout + added.stderr)
            out[name] = hammer(HOST, server.port, images, seconds=5 if quick else seconds)
        finally:
            server.stop()
            stop_server(instance / "milvus.db")
        out[name]["worker_restarts"] = worker_restarts(workdir / f"gunicorn-overload-{name}.log")
    return out


def _gallery_files(workdir: Path, images: list[bytes]) -> list[str]:
    folder = workdir / "overload-gallery"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{i}.jpg"
        path.write_bytes(image)
        paths.append(str(path))
    return paths
