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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from app.exceptions import VectorStoreUnavailable

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
        with _locked(data_dir):
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
    pid = _spawn_detached([
        sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data_dir),
        "--host", "127.0.0.1", "--port", str(port),
    ], log_path)
    deadline = time.monotonic() + timeout
    while not _port_open(port):
        if not _alive(pid) or time.monotonic() > deadline:
            if _alive(pid):
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


# Started through a short-lived middle process, the server is re-parented away
# from us: it outlives the app or command that needed it, ignores its ^C
# (own session), and never lingers as our zombie or unreaped child.
_LAUNCHER = (
    "import subprocess, sys\n"
    "log = open(sys.argv[1], 'ab')\n"
    "p = subprocess.Popen(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT,\n"
    "                     stdin=subprocess.DEVNULL, start_new_session=True)\n"
    "print(p.pid)\n"
)


def _spawn_detached(command: list[str], log_path: Path) -> int:
    launched = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, str(log_path), *command],
        capture_output=True, text=True, check=True, timeout=30,
    )
    return int(launched.stdout.strip())


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
    try:  # a zombie is dead: /proc says so ("Z") until its parent reaps it
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1] != "Z"
    except (OSError, IndexError):
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
