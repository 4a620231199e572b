"""A Milvus Lite server per data directory, shared by the web app and the CLI.

Milvus Lite locks its data directory to one process. Opening the file directly
would stop ``flask gallery add`` or a reindex from running while the app serves,
and would forbid more than one gunicorn worker. So when ``LOOKALIKE_MILVUS_URI``
is a local path, the first process that needs it starts ``milvus-lite server``
on a free loopback port, records ``{pid, port}`` beside the data, and every
process (workers, commands) connects to it over gRPC. A file lock makes the
start race-free; a dead or unresponsive server is replaced.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from app.exceptions import VectorStoreUnavailable
from app.vectors.processes import (
    alive,
    free_port,
    locked,
    port_open,
    recorded,
    spawn_detached,
    wait_for_exit,
)

START_TIMEOUT = 60.0


@dataclass(frozen=True)
class LiteServer:
    data_dir: Path
    pid: int
    port: int

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def state_file(data_dir: Path) -> Path:
    return data_dir.with_name(data_dir.name + ".server.json")


def ensure_server(data_dir: Path, *, timeout: float = START_TIMEOUT) -> LiteServer:
    """The running server for ``data_dir``, started if there is none."""
    data_dir = data_dir.resolve()
    try:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        with locked(data_dir):
            server = running_server(data_dir)
            if server is not None:
                return server
            return _start(data_dir, timeout)
    except OSError as exc:
        raise VectorStoreUnavailable(
            f"Milvus Lite cannot use {data_dir.parent}: {exc.strerror or exc}. Check that the "
            "instance folder is writable and the disk is not full."
        ) from exc


def running_server(data_dir: Path) -> LiteServer | None:
    """The recorded server if its process is alive and its port answers."""
    found = recorded(state_file(data_dir.resolve()))
    return LiteServer(data_dir.resolve(), *found) if found else None


def stop_server(data_dir: Path, *, timeout: float = 20.0) -> bool:
    """Stop the server of ``data_dir`` (SIGTERM, then SIGKILL); True if one was running.

    SIGTERM, not SIGINT: a server started from a non-interactive shell ignores SIGINT.
    """
    data_dir = data_dir.resolve()
    if not data_dir.parent.is_dir():
        return False
    with locked(data_dir):
        server = running_server(data_dir)
        state_file(data_dir).unlink(missing_ok=True)
        if server is None:
            return False
        os.kill(server.pid, signal.SIGTERM)
        if not wait_for_exit(server.pid, timeout):
            os.kill(server.pid, signal.SIGKILL)
        return True


def _start(data_dir: Path, timeout: float) -> LiteServer:
    port = free_port()
    log_path = data_dir.with_name(data_dir.name + ".server.log")
    pid = spawn_detached([
        sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data_dir),
        "--host", "127.0.0.1", "--port", str(port),
    ], log_path)
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if not alive(pid) or time.monotonic() > deadline:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
            tail = log_path.read_text(errors="replace")[-800:]
            raise VectorStoreUnavailable(
                f"Could not start the Milvus Lite server for {data_dir} (log: {log_path}). "
                f"Is another program holding that folder? Last output:\n{tail}"
            )
        time.sleep(0.05)
    server = LiteServer(data_dir, pid, port)
    state_file(data_dir).write_text(json.dumps({"pid": server.pid, "port": server.port}))
    return server
