"""Local server processes: started detached, found again by state file, stopped by pid.

The embedded Milvus servers (app/vectors/lite_server.py, app/vectors/standalone.py)
share these: a file lock per data folder makes start and stop race-free, and a
state file beside it records the pid and port every process connects to.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


def spawn_detached(command: list[str], log_path: Path) -> int:
    """Start ``command`` in a session of its own, its output appended to ``log_path``."""
    launched = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, str(log_path), *command],
        capture_output=True, text=True, check=True, timeout=30,
    )
    return int(launched.stdout.strip())


@contextmanager
def locked(data_dir: Path) -> Iterator[None]:
    """Hold the file lock beside ``data_dir`` that makes starting and stopping race-free."""
    lock_path = data_dir.with_name(data_dir.name + ".server.lock")
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def alive(pid: int) -> bool:
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


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def recorded(state_path: Path) -> tuple[int, int] | None:
    """``(pid, port)`` from a server's state file, if that process lives and its port answers."""
    try:
        state = json.loads(state_path.read_text())
        pid, port = int(state["pid"]), int(state["port"])
    except (OSError, ValueError, KeyError):
        return None
    return (pid, port) if alive(pid) and port_open(port) else None


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Poll until ``pid`` has exited; False if it still runs after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
