"""The shared Milvus Lite server: one per data dir, found again, replaced when dead."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from app.vectors.connect import open_client
from app.vectors.lite_server import ensure_server, running_server, stop_server


def test_a_second_caller_gets_the_same_server_and_a_dead_one_is_replaced(tmp_path: Path) -> None:
    data_dir = tmp_path / "milvus.db"
    first = ensure_server(data_dir)
    try:
        assert ensure_server(data_dir) == first
        open_client(first.uri, timeout=5)[0].list_collections()
        os.kill(first.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while running_server(data_dir) is not None and time.monotonic() < deadline:
            time.sleep(0.1)  # the poll interval of a wait with a deadline
        second = ensure_server(data_dir)
        assert second.pid != first.pid
        open_client(second.uri, timeout=5)[0].list_collections()
    finally:
        stop_server(data_dir)
    assert running_server(data_dir) is None


def test_stopping_without_a_server_is_harmless(tmp_path: Path) -> None:
    assert stop_server(tmp_path / "none" / "milvus.db") is False
