"""A real S3-compatible server on 127.0.0.1 for the storage tests, no mocks.

Which server runs, in order of preference:

1. ``s3rver`` (npm), file-backed, so a stop/start on the same data folder is a
   real restart. Install: ``npm install -g s3rver@3.7.1`` (needs Node.js; any
   install that puts ``s3rver`` on PATH works, or point ``LOOKALIKE_S3RVER`` at
   the executable). Credentials are fixed: ``S3RVER`` / ``S3RVER``.
2. ``moto[server]`` (PyPI), in-memory, run in this process:
   ``pip install 'moto[server]==5.2.5'``. Its data live in the process, so they
   also survive a stop/start of the listener.

``LOOKALIKE_TEST_S3=s3rver|moto`` forces one; tests that need a server are
skipped, saying why, when neither is installed.

Fixtures: ``s3_server`` (one per session, never stopped by tests) and
``own_s3_server`` (one per test, for tests that stop and restart it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 20.0


class S3Server(Protocol):
    """What tests need from a server: where it is, its keys, and stop/start."""

    kind: str
    port: int
    access_key: str
    secret_key: str

    @property
    def endpoint(self) -> str: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_until_listening(port: int, alive: Callable[[], bool] = lambda: True) -> None:
    """Poll the port until it accepts connections, so tests never race startup."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"The S3 server on port {port} exited during startup.")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)  # the poll interval of a wait with a deadline
    raise RuntimeError(f"The S3 server on port {port} did not start in {STARTUP_TIMEOUT:g} s.")


class S3rver:
    """``s3rver`` as a child process, storing objects under ``data_dir``."""

    kind = "s3rver"
    access_key = "S3RVER"
    secret_key = "S3RVER"

    def __init__(self, executable: str, data_dir: Path, port: int) -> None:
        self.executable = executable
        self.data_dir = data_dir
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir.parent / f"s3rver-{self.port}.log").open("ab")
        with log:
            self._process = subprocess.Popen(
                [
                    self.executable,
                    "--silent",
                    "-a",
                    HOST,
                    "-p",
                    str(self.port),
                    "-d",
                    str(self.data_dir),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        process = self._process
        try:
            wait_until_listening(self.port, alive=lambda: process.poll() is None)
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop our child (by its pid) and wait, so the port and folder are free."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


class MotoS3:
    """moto's threaded server in this process; its data outlive a stop/start."""

    kind = "moto"
    access_key = "testing-access"
    secret_key = "testing-secret"

    def __init__(self, port: int) -> None:
        self.port = port
        self._server = None

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address=HOST, port=self.port, verbose=False)
        self._server.start()
        wait_until_listening(self.port)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.stop()
        # ThreadedMotoServer.stop() leaves the socket listening: close it so that a
        # stopped server refuses connections, as a dead one would.
        server._server.server_close()


def available_kind() -> str | None:
    """The server to use: forced by LOOKALIKE_TEST_S3, else s3rver, else moto."""
    forced = os.environ.get("LOOKALIKE_TEST_S3")
    kinds = [forced] if forced else ["s3rver", "moto"]
    for kind in kinds:
        if kind == "s3rver" and _s3rver_executable():
            return kind
        if kind == "moto" and _moto_installed():
            return kind
    return None


def make_server(data_dir: Path, port: int | None = None) -> S3Server:
    """A server of the available kind (not started); skip the test when there is none."""
    kind = available_kind()
    if kind is None:
        pytest.skip(
            "No S3 server for tests: `npm install -g s3rver@3.7.1` "
            "or `pip install 'moto[server]==5.2.5'`."
        )
    port = port or free_port()
    if kind == "s3rver":
        return S3rver(_s3rver_executable(), data_dir, port)
    return MotoS3(port)


def _s3rver_executable() -> str | None:
    return os.environ.get("LOOKALIKE_S3RVER") or shutil.which("s3rver")


def _moto_installed() -> bool:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One running server shared by the session; tests must not stop it."""
    server = make_server(tmp_path_factory.mktemp("s3") / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_s3_server(tmp_path: Path) -> Iterator[S3Server]:
    """A server of the test's own, which it may stop and start again (same port and data)."""
    server = make_server(tmp_path / "s3-data")
    server.start()
    try:
        yield server
    finally:
        server.stop()
