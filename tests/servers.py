"""Real servers for the deployment tests: gunicorn, nginx, and a Milvus standalone server.

Everything listens on 127.0.0.1 and is stopped by the fixture that started it.

- ``Gunicorn``: the app under ``gunicorn.conf.py``, as in production.
- ``Nginx``: Debian's nginx run as a user process (``nginx -c CONF -p PREFIX``)
  with ``nginx/lookalike.conf.template`` rendered into a minimal nginx.conf.
  Install: ``apt-get install -y --no-install-recommends nginx``.
- ``MilvusStandalone``: the standalone server of the PyPI package ``milvus``
  (2.3.5), installed in its own venv: ``python3 -m venv /opt/milvus-venv &&
  /opt/milvus-venv/bin/pip install milvus==2.3.5`` (or point
  ``LOOKALIKE_MILVUS_SERVER`` at its ``milvus-server``). That binary listens on
  all interfaces and cannot be told otherwise, so where the test process may
  create a network namespace (root: CI) the server runs in a private one, with
  only its gRPC port relayed to 127.0.0.1 here. ``LOOKALIKE_TEST_MILVUS_URI``
  uses a server that is already running instead.
- ``redis_server``: Debian's ``redis-server`` as a user process on a free port,
  nothing saved to disk. Install: ``apt-get install -y --no-install-recommends
  redis-server``.
"""

from __future__ import annotations

import ctypes
import fcntl
import http.client
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.vectors.sandbox import relay
from tests.s3server import free_port

ROOT = Path(__file__).resolve().parent.parent
NGINX_TEMPLATE = ROOT / "nginx" / "lookalike.conf.template"
MILVUS_SERVER = Path("/opt/milvus-venv/bin/milvus-server")
MILVUS_PORT = 19530  # inside its own network namespace nothing else can hold it
HOST = "127.0.0.1"


# -- HTTP -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def fetch(url: str, *, method: str = "GET", body: bytes | None = None,
          headers: Mapping[str, str] | None = None, timeout: float = 60.0) -> Reply:
    """One request on a fresh connection, every header kept (duplicates too)."""
    match = re.fullmatch(r"http://([^/:]+):(\d+)(/.*)?", url)
    assert match, url
    connection = http.client.HTTPConnection(match[1], int(match[2]), timeout=timeout)
    try:
        connection.request(method, match[3] or "/", body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        return Reply(response.status, response.getheaders(), response.read())
    finally:
        connection.close()


def multipart(fields: Mapping[str, str],
              files: Mapping[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type, as a browser sends it."""
    from werkzeug.datastructures import FileStorage
    from werkzeug.test import encode_multipart

    values: dict[str, object] = dict(fields)
    for name, (filename, data) in files.items():
        values[name] = FileStorage(io.BytesIO(data), filename=filename,
                                   content_type="application/octet-stream")
    boundary, body = encode_multipart(values)
    return body, f"multipart/form-data; boundary={boundary}"


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float, what: str,
                  log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.returncode}):\n{_tail(log)}")
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)  # the poll interval of a wait with a deadline
    raise RuntimeError(f"{what} did not listen on {port} within {timeout:g} s:\n{_tail(log)}")


def stop_process(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM,
                 timeout: float = 30.0) -> None:
    """Signal our child (by its pid) and wait; kill its process group if it hangs."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # started with start_new_session=True
        process.wait(timeout=10)


def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return "(no log)"


# -- gunicorn ---------------------------------------------------------------------------


class Gunicorn:
    """``gunicorn -c gunicorn.conf.py wsgi:app`` on a free loopback port."""

    def __init__(self, env: Mapping[str, str], log: Path) -> None:
        self.port = free_port()
        self.env = {**clean_environ(), **env, "GUNICORN_BIND": f"{HOST}:{self.port}"}
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 180.0) -> None:
        command = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"),
                   "wsgi:app"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        wait_for_port(self.port, self.process, timeout, "gunicorn", self.log)
        # The socket is bound before any worker is warm: the first answer comes
        # only once a worker has loaded the model (post_worker_init).
        reply = fetch(self.url + "/api/health", timeout=timeout)
        if reply.status != 200:
            raise RuntimeError(f"gunicorn is not healthy: {reply.status} {reply.body[:500]!r}")

    def stop(self) -> None:
        stop_process(self.process, signal.SIGTERM, timeout=40)

    def flask(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        """``flask --app wsgi ...`` with the same environment as the server."""
        return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT,
                              env=self.env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)


def clean_environ() -> dict[str, str]:
    """Our environment without a developer's LOOKALIKE_* or GUNICORN_* settings."""
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("LOOKALIKE_", "GUNICORN_", "WEB_CONCURRENCY"))}
    keep["HF_HUB_OFFLINE"] = "1"
    return keep


# -- nginx ------------------------------------------------------------------------------


def nginx_executable() -> str | None:
    return os.environ.get("LOOKALIKE_NGINX") or shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None)


def render(template: str, values: Mapping[str, str]) -> str:
    """Replace ``${NAME}`` for the given names only, as the nginx image's envsubst does."""
    for name, value in values.items():
        template = template.replace("${" + name + "}", value)
    return template


def template_variables(template: str) -> set[str]:
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", template))


MAIN_CONF = """\
# Test harness only: the official image's nginx.conf plays this part in compose.
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
{user}
events {{ worker_connections 128; }}
http {{
    {types}
    default_type application/octet-stream;
    access_log {prefix}/access.log;
    sendfile on;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {prefix}/conf.d/*.conf;
}}
"""
FALLBACK_TYPES = """types { text/html html; text/css css; application/javascript js;
        image/png png; image/jpeg jpg; image/webp webp; image/svg+xml svg; }"""


class Nginx:
    """nginx in front of ``upstream`` (host:port), with the repository's static/ folder."""

    def __init__(self, executable: str, prefix: Path, upstream: str) -> None:
        self.executable = executable
        self.prefix = prefix
        self.port = free_port()
        self.upstream = upstream
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def error_log(self) -> Path:
        return self.prefix / "error.log"

    def write_config(self) -> Path:
        for sub in ("conf.d", "tmp"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        site = render(NGINX_TEMPLATE.read_text(), {
            "LOOKALIKE_UPSTREAM": self.upstream,
            "NGINX_LISTEN": f"{HOST}:{self.port}",
            "STATIC_ROOT": str(ROOT / "static"),
        })
        (self.prefix / "conf.d" / "lookalike.conf").write_text(site)
        mime = Path("/etc/nginx/mime.types")
        conf = self.prefix / "nginx.conf"
        conf.write_text(MAIN_CONF.format(
            prefix=self.prefix,
            # Started by root, nginx would switch its workers to "nobody", who
            # cannot enter pytest's private temporary folders.
            user="user root;" if os.geteuid() == 0 else "",
            types=f"include {mime};" if mime.is_file() else FALLBACK_TYPES,
        ))
        return conf

    def check(self) -> subprocess.CompletedProcess[str]:
        conf = self.write_config()
        return subprocess.run([self.executable, "-t", "-c", str(conf), "-p", str(self.prefix),
                               "-e", str(self.error_log)], capture_output=True, text=True,
                              timeout=30)

    def start(self) -> None:
        conf = self.write_config()
        with self.error_log.open("ab") as log:
            self.process = subprocess.Popen(
                [self.executable, "-c", str(conf), "-p", str(self.prefix),
                 "-e", str(self.error_log)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        wait_for_port(self.port, self.process, 30, "nginx", self.error_log)

    def stop(self) -> None:
        stop_process(self.process, signal.SIGQUIT, timeout=15)  # graceful


# -- Milvus standalone server -------------------------------------------------------------

CLONE_NEWNET = 0x40000000
# Run in a new network namespace: bring its loopback up, then become the server.
_BRING_UP_LOOPBACK = """\
import fcntl, os, socket, struct, sys
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    fcntl.ioctl(s, 0x8914, struct.pack("16sH22x", b"lo", 0x1 | 0x8 | 0x40))  # SIOCSIFFLAGS
os.execv(sys.argv[1], sys.argv[1:])
"""
UNPACK = "import sys, milvus; milvus._initialize_data_files(sys.argv[1])"
# The embedded etcd's peer port: milvus-server picks free ports for everything
# else, but not this one, and with it taken the wrapper waits forever.
ETCD_PEER_PORT = 2380


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def milvus_executable() -> str | None:
    configured = os.environ.get("LOOKALIKE_MILVUS_SERVER")
    if configured:
        return configured
    if MILVUS_SERVER.is_file():
        return str(MILVUS_SERVER)
    return shutil.which("milvus-server")


def can_isolate_network() -> bool:
    unshare = shutil.which("unshare")
    if not unshare:
        return False
    return subprocess.run([unshare, "--net", "--", "true"], capture_output=True).returncode == 0


class NetnsRelay:
    """Relay 127.0.0.1:<port> here to 127.0.0.1:<target> inside another process's network.

    The listening socket is made in our namespace; a thread then enters the
    server's namespace (setns affects only the calling thread) and opens the
    upstream connections there. Two pump threads copy bytes each way.
    """

    def __init__(self, pid: int, target: int, port: int = 0) -> None:
        self.target = target
        self._netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        self.listener = socket.create_server((HOST, port))
        self.port = self.listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="netns-relay", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(self._netns, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns into the Milvus network namespace failed")
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection((HOST, self.target), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            threading.Thread(target=relay, args=(client, upstream), daemon=True).start()

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self.listener.close()
        self._thread.join(timeout=5)
        os.close(self._netns)


class MilvusStandalone:
    """``milvus-server`` (PyPI ``milvus`` 2.3.5) on a data folder of its own."""

    def __init__(self, executable: str, root: Path, *, isolate: bool | None = None) -> None:
        self.executable = executable
        self.root = root
        self.isolated = can_isolate_network() if isolate is None else isolate
        self.log = root / "milvus-server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.relay: NetnsRelay | None = None
        self.port = 0

    @property
    def uri(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 180.0, *, port: int = 0) -> None:
        """Start the server; ``port`` (say, the one of a previous start) or a free one."""
        if not self.isolated and not port_is_free(ETCD_PEER_PORT):
            raise RuntimeError(
                f"Port {ETCD_PEER_PORT} (the embedded etcd's peer port, which milvus-server "
                "cannot move) is taken, most likely by another milvus-server on this host. "
                "Stop it, or run the tests in their own network namespace (.ci/run).")
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        binaries = self._unpacked_binaries()
        if binaries is not None and not (data / "bin").exists():
            (data / "bin").symlink_to(binaries, target_is_directory=True)
        public = port
        port = MILVUS_PORT if self.isolated else (public or free_port())
        command = [self.executable, "--data", str(data), "--proxy-port", str(port)]
        if self.isolated:
            command = [shutil.which("unshare") or "unshare", "--net", "--", sys.executable,
                       "-c", _BRING_UP_LOOPBACK, *command]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env,
                                            start_new_session=True)
        try:
            self._wait_for_banner(timeout)
            if self.isolated:
                self.relay = NetnsRelay(self.process.pid, port, public)
                self.port = self.relay.port
            else:
                self.port = port
            self._wait_for_grpc(timeout)  # a restart on old data can take minutes on a busy machine
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGINT: the wrapper then stops its server child (SIGTERM would orphan it)."""
        stop_process(self.process, signal.SIGINT, timeout=30)
        if self.relay is not None:
            self.relay.close()
            self.relay = None

    def _wait_for_banner(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert self.process is not None
        while time.monotonic() < deadline:
            text = _tail(self.log, 4000)
            if "Ctrl+C to exit" in text:
                return
            if self.process.poll() is not None or "already stopped" in text or "timeout" in text:
                raise RuntimeError(f"The Milvus server did not start:\n{text}\n"
                                   f"(logs under {self.root / 'data' / 'logs'})")
            time.sleep(0.2)  # the poll interval of a wait with a deadline
        raise RuntimeError(f"The Milvus server did not start within {timeout:g} s.")

    def _wait_for_grpc(self, timeout: float) -> None:
        from pymilvus import MilvusException

        from app.vectors.connect import open_client

        deadline = time.monotonic() + timeout
        while True:
            try:
                client = open_client(self.uri, timeout=5)[0]
                client.get_server_version(timeout=5)
                client.close()
                return
            except MilvusException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)  # the poll interval of a wait with a deadline

    def _unpacked_binaries(self) -> Path | None:
        """The server's binaries, unpacked once per venv instead of once per data folder.

        The wrapper unpacks ~250 MB into every data folder it is given; we unpack
        them beside the venv (under a lock) and link them in. None: let it unpack.
        """
        venv = Path(self.executable).resolve().parent.parent
        home = Path(os.environ.get("LOOKALIKE_MILVUS_HOME") or venv / "milvus-home")
        python = Path(self.executable).resolve().parent / "python"
        try:
            home.mkdir(parents=True, exist_ok=True)
            with (home / ".lock").open("a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                done = subprocess.run([str(python), "-c", UNPACK, str(home)],
                                      capture_output=True, timeout=300)
        except (OSError, subprocess.SubprocessError):
            return None
        unpacked = done.returncode == 0 and (home / "bin" / "milvus").is_file()
        return home / "bin" if unpacked else None


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URI of a real Milvus standalone server for this session."""
    configured = os.environ.get("LOOKALIKE_TEST_MILVUS_URI")
    if configured:
        yield configured
        return
    executable = milvus_executable()
    if executable is None:
        pytest.skip("No Milvus server for tests: `python3 -m venv /opt/milvus-venv && "
                    "/opt/milvus-venv/bin/pip install milvus==2.3.5` (or set "
                    "LOOKALIKE_MILVUS_SERVER or LOOKALIKE_TEST_MILVUS_URI).")
    server = MilvusStandalone(executable, tmp_path_factory.mktemp("milvus-server"))
    server.start()
    try:
        yield server.uri
    finally:
        server.stop()


# -- Redis --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a Redis server of this session (``redis://127.0.0.1:PORT/0``)."""
    executable = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").is_file() else None)
    if executable is None:
        pytest.skip("No Redis server for tests: `apt-get install -y --no-install-recommends "
                    "redis-server`.")
    folder = tmp_path_factory.mktemp("redis")
    port = free_port()
    log = folder / "redis.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [executable, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(folder)],
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, process, 20.0, "redis-server", log)
        yield f"redis://{HOST}:{port}/0"
    finally:
        stop_process(process)
