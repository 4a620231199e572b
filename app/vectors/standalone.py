"""The embedded default: a Milvus standalone server per instance folder, started on demand.

Milvus Lite searches in time linear in the gallery (its Python loop over every
row per search, BENCHMARKS.md), so a large photo archive on the old default
met a cliff. The standalone server of the PyPI package ``milvus`` (installed
by ``make install`` in its own venv, ``.venv-milvus``) searches its HNSW
index instead. Like the Lite server before it, the first process that needs
it starts it (under a file lock), records ``{pid, port}`` beside its data
(``instance/milvus/``), and every process connects to it over gRPC on a
loopback port; ``make stop`` stops it. It runs in a private network (see
app.vectors.sandbox), so it listens on loopback only and instances do not
collide over the ports it cannot move.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from app.exceptions import VectorStoreUnavailable
from app.vectors.processes import (
    alive,
    free_port,
    locked,
    recorded,
    spawn_detached,
    wait_for_exit,
)

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 300.0  # the first start also unpacks the server binaries (docs/milvus.md)
CANDIDATES = (ROOT / ".venv-milvus" / "bin" / "milvus-server",
              Path("/opt/milvus-venv/bin/milvus-server"))
SANDBOX = Path(__file__).with_name("sandbox.py")  # run by path: it needs nothing but stdlib
UNPACK = "import sys, milvus; milvus._initialize_data_files(sys.argv[1])"


@dataclass(frozen=True)
class StandaloneServer:
    data_dir: Path
    pid: int
    port: int

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"


NO_NAMESPACES = 3  # app/vectors/sandbox.py's exit when the kernel refuses namespaces


def find_executable(configured: str = "") -> Path | None:
    """``milvus-server``: the configured one, ours (.venv-milvus), CI's, or on PATH."""
    if configured:
        return Path(configured) if Path(configured).is_file() else None
    for candidate in CANDIDATES:
        if candidate.is_file():
            return candidate
    found = shutil.which("milvus-server")
    return Path(found) if found else None


def can_isolate() -> bool:
    """Whether this machine lets us give the server a private network (user namespaces).

    Only the sandbox's own answer (exit 3: the kernel refused) means no; a probe that
    fails any other way is a bug of ours, raised rather than hidden behind Lite.
    """
    probe = subprocess.run([sys.executable, str(SANDBOX), "--port", "0", "--probe"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode not in (0, NO_NAMESPACES):
        raise VectorStoreUnavailable(
            f"The local Milvus server's sandbox failed its start-up check (exit "
            f"{probe.returncode}); please report this. Output:\n{probe.stderr[-800:]}")
    return probe.returncode == 0


def state_file(data_dir: Path) -> Path:
    return data_dir.with_name(data_dir.name + ".server.json")


def ensure_server(data_dir: Path, executable: Path, *,
                  timeout: float = START_TIMEOUT) -> StandaloneServer:
    """The running server for ``data_dir``, started if there is none."""
    data_dir = data_dir.resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with locked(data_dir):
            return running_server(data_dir) or _start(data_dir, executable, timeout)
    except OSError as exc:
        raise VectorStoreUnavailable(
            f"The local Milvus server cannot use {data_dir}: {exc.strerror or exc}. Check "
            "that the instance folder is writable and the disk is not full."
        ) from exc


def running_server(data_dir: Path) -> StandaloneServer | None:
    """The recorded server if its process is alive and its port answers."""
    found = recorded(state_file(data_dir.resolve()))
    return StandaloneServer(data_dir.resolve(), *found) if found else None


def stop_server(data_dir: Path, *, timeout: float = 60.0) -> bool:
    """Stop the server of ``data_dir``; True if one was running.

    SIGTERM to the sandbox, which passes SIGINT to milvus-server (the only
    signal on which it stops its own child); the whole process group is killed
    if that does not end it in time.
    """
    data_dir = data_dir.resolve()
    if not data_dir.is_dir():
        return False
    with locked(data_dir):
        server = running_server(data_dir)
        state_file(data_dir).unlink(missing_ok=True)
        if server is None:
            return False
        os.kill(server.pid, signal.SIGTERM)
        if not wait_for_exit(server.pid, timeout):
            os.killpg(server.pid, signal.SIGKILL)  # the sandbox leads its own session
        return True


def _start(data_dir: Path, executable: Path, timeout: float) -> StandaloneServer:
    _link_binaries(data_dir, executable)
    port = free_port()
    log_path = data_dir.with_name(data_dir.name + ".server.log")
    ready = state_file(data_dir)
    ready.unlink(missing_ok=True)
    pid = spawn_detached([
        sys.executable, str(SANDBOX), "--port", str(port), "--ready", str(ready),
        "--", str(executable), "--data", str(data_dir), "--proxy-port", "19530",
    ], log_path)
    deadline = time.monotonic() + timeout
    while not ready.is_file():
        if not alive(pid) or time.monotonic() > deadline:
            if alive(pid):
                os.killpg(pid, signal.SIGKILL)
            tail = log_path.read_text(errors="replace")[-800:]
            raise VectorStoreUnavailable(
                f"Could not start the local Milvus server for {data_dir} (log: {log_path}, "
                f"and {data_dir / 'logs'}). Last output:\n{tail}"
            )
        time.sleep(0.1)
    return StandaloneServer(data_dir, pid, port)


def _link_binaries(data_dir: Path, executable: Path) -> None:
    """Unpack the server's binaries once beside its venv and link them into the data folder.

    milvus-server otherwise unpacks its binaries into every data folder it is given.
    Where that fails (a read-only venv), it unpacks them itself.
    """
    if (data_dir / "bin").exists():
        return
    home = executable.resolve().parent.parent / "milvus-home"
    python = executable.resolve().parent / "python"
    try:
        home.mkdir(parents=True, exist_ok=True)
        with (home / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            done = subprocess.run([str(python), "-c", UNPACK, str(home)], capture_output=True,
                                  timeout=600)
    except (OSError, subprocess.SubprocessError):
        return
    if done.returncode == 0 and (home / "bin" / "milvus").is_file():
        (data_dir / "bin").symlink_to(home / "bin", target_is_directory=True)
