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

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from app.exceptions import VectorStoreUnavailable

START_TIMEOUT = 60.0
# Handles of servers this process started. They outlive us on purpose; keeping
# the handle stops Popen.__del__ from warning that the child is still running.
_STARTED: list[subprocess.Popen[bytes]] = []


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
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with _locked(data_dir):
        server = running_server(data_dir)
        if server is not None:
            return server
        return _start(data_dir, timeout)


def running_server(data_dir: Path) -> LiteServer | None:
    """The recorded server if its process is alive and its port answers."""
    try:
        state = json.loads(state_file(data_dir.resolve()).read_text())
        server = LiteServer(data_dir.resolve(), int(state["pid"]), int(state["port"]))
    except (OSError, ValueError, KeyError):
        return None
    if _alive(server.pid) and _port_open(server.port):
        return server
    return None


def stop_server(data_dir: Path, *, timeout: float = 20.0) -> bool:
    """Stop the server of ``data_dir`` (SIGTERM, then SIGKILL); True if one was running.

    SIGTERM, not SIGINT: a server started from a non-interactive shell ignores SIGINT.
    """
    data_dir = data_dir.resolve()
    if not data_dir.parent.is_dir():
        return False
    with _locked(data_dir):
        server = running_server(data_dir)
        state_file(data_dir).unlink(missing_ok=True)
        if server is None:
            return False
        os.kill(server.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(server.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(server.pid):
            os.kill(server.pid, signal.SIGKILL)
        return True


def _start(data_dir: Path, timeout: float) -> LiteServer:
    port = _free_port()
    log_path = data_dir.with_name(data_dir.name + ".server.log")
    command = [
        sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data_dir),
        "--host", "127.0.0.1", "--port", str(port),
    ]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives the process that started it, ignores its ^C
        )
    deadline = time.monotonic() + timeout
    while not _port_open(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            tail = log_path.read_text(errors="replace")[-800:]
            raise VectorStoreUnavailable(
                f"Could not start the Milvus Lite server for {data_dir} (log: {log_path}). "
                f"Is another program holding that folder? Last output:\n{tail}"
            )
        time.sleep(0.05)
    _STARTED.append(process)
    server = LiteServer(data_dir, process.pid, port)
    state_file(data_dir).write_text(json.dumps({"pid": server.pid, "port": server.port}))
    return server


@contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    lock_path = data_dir.with_name(data_dir.name + ".server.lock")
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still "exists": reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
