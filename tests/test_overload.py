"""Overload: 64 clients against one gunicorn worker. Searches are answered or refused
at once (503 + Retry-After); nothing else fails, health answers throughout, and the
worker is never killed. The 30-second run with figures is bench suite ``overload``.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from werkzeug.security import generate_password_hash

from bench.overload import hammer, worker_restarts
from tests.servers import HOST, Gunicorn

# How long the clients hammer; the benchmark runs 30 s (bench/overload.py).
SECONDS = float(os.environ.get("LOOKALIKE_TEST_OVERLOAD_SECONDS", "10"))


@pytest.mark.slow
def test_an_overloaded_worker_sheds_searches_and_stays_healthy(
    tmp_path: Path, tiny_model_dir: Path, photos
) -> None:
    from app.vectors.lite_server import stop_server

    instance = tmp_path / "instance"
    server = Gunicorn(
        {
            "LOOKALIKE_MODEL": str(tiny_model_dir),
            "LOOKALIKE_INSTANCE_PATH": str(instance),
            "LOOKALIKE_MILVUS_URI": "milvus.db",
            "LOOKALIKE_COLLECTION": f"over{uuid.uuid4().hex[:8]}",
            "LOOKALIKE_SECRET_KEY": uuid.uuid4().hex,
            "LOOKALIKE_ADMIN_PASSWORD_HASH": generate_password_hash("unused-password"),
            "LOOKALIKE_RATELIMIT_SEARCH": "",
            "LOOKALIKE_SHED_AFTER_SECONDS": "0.3",
            "GUNICORN_WORKERS": "1",
            "GUNICORN_THREADS": "4",
            "GUNICORN_TIMEOUT": "30",
            "GUNICORN_MAX_REQUESTS": "0",  # a recycled single worker stalls while its model loads
        },
        log=tmp_path / "gunicorn.log",
    )
    images = list(photos.values())
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for name, data in photos.items():
        (gallery / f"{name}.jpg").write_bytes(data)
    try:
        server.start()
        added = server.flask("gallery", "add", str(gallery))  # a warm collection, as served
        assert added.returncode == 0, added.stderr
        report = hammer(HOST, server.port, images, clients=64, seconds=SECONDS)
    finally:
        server.stop()
        stop_server(instance / "milvus.db")
    print(f"\nOVERLOAD {report}")
    assert report["other"] == {}, report  # only 200, or 503 with Retry-After
    assert report["accepted"] > 0, report
    assert report["health_checks"] >= SECONDS and report["health_failures"] == 0, report
    assert report["health_max_ms"] < 5000, report
    assert worker_restarts(tmp_path / "gunicorn.log") == 0
