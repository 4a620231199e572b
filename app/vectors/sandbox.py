"""Run a server in a private, loopback-only network and relay one port to it.

``python -m app.vectors.sandbox --port P --ready FILE -- milvus-server ...``

The PyPI Milvus standalone binds its gRPC and metrics ports on every interface
and its embedded etcd on fixed ports (2379/2380), and none of that can be
configured. Run in a network namespace of its own (made with an unprivileged
user namespace where we are not root), it is unreachable from outside and two
instances on one machine cannot collide. This process opens its listening
socket on 127.0.0.1:P *before* it leaves the host's network, so that socket
stays on the host; connections it accepts there are relayed to the server's
port inside. It writes ``FILE`` once the server is healthy, stops the server
on SIGTERM (SIGINT to its launcher, which then stops its child cleanly), and
exits when the server does.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_NOSUID, MS_NODEV = 0x2, 0x4
SIOCSIFFLAGS = 0x8914
IFF_UP_LOOPBACK_RUNNING = 0x1 | 0x8 | 0x40
INNER_PORT = 19530  # alone in its network, the server can always have Milvus' own port
STOP_GRACE_S = 30.0  # for the server to stop cleanly once milvus-server is gone
HEALTH_URL = "http://127.0.0.1:9091/healthz"  # the first free metrics port, inside


def enter_private_network() -> None:
    """Leave the host's network for a new one holding only loopback (brought up), with a
    private /run.

    Root makes the namespaces directly; anyone else first makes a user namespace
    (mapping their own ids), which grants the right to make them. Must run while
    the process has a single thread.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.geteuid(), os.getegid()
    flags = CLONE_NEWNET | CLONE_NEWNS | (0 if uid == 0 else CLONE_NEWUSER)
    if libc.unshare(flags) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"cannot create a private network namespace: {os.strerror(errno)}")
    if uid != 0:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", IFF_UP_LOOPBACK_RUNNING))
    _private_run(libc)


def _private_run(libc: ctypes.CDLL) -> None:
    """A /run of our own: the server writes its pid file to /run/milvus (else /tmp/milvus),
    fixed paths that another user's server may own. Best effort: without it the server
    still runs where those paths are free."""
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:  # no propagation out
        return
    if libc.mount(b"tmpfs", b"/run", b"tmpfs", MS_NOSUID | MS_NODEV, b"mode=755,size=16m") != 0:
        print(f"sandbox: no private /run ({os.strerror(ctypes.get_errno())})", file=sys.stderr)
        return
    os.makedirs("/run/milvus", exist_ok=True)


def relay_forever(listener: socket.socket, port: int) -> None:
    """Accept on ``listener`` and pass each connection on to 127.0.0.1:``port``."""
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return  # closed
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            client.close()
            continue
        upstream.settimeout(None)
        threading.Thread(target=relay, args=(client, upstream), daemon=True).start()


def relay(client: socket.socket, upstream: socket.socket) -> None:
    """Copy both ways between two connected sockets until both ends close (tests use it too)."""
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy until end of stream, then pass the end on; on an error, end both ways."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _healthy() -> bool:
    try:
        with urllib.request.urlopen(HEALTH_URL, timeout=2) as reply:  # noqa: S310 (loopback)
            return reply.status == 200
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.vectors.sandbox", description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="host loopback port to relay")
    parser.add_argument("--ready", type=Path, help="file written once the server is healthy")
    parser.add_argument("--probe", action="store_true", help="only check that it can isolate")
    parser.add_argument("command", nargs="*")
    args = parser.parse_args(argv)
    try:
        listener = None if args.probe else socket.create_server(("127.0.0.1", args.port))
        enter_private_network()
    except OSError as exc:
        print(f"sandbox: {exc}", file=sys.stderr, flush=True)
        return 3
    if args.probe:
        return 0
    assert listener is not None
    server = subprocess.Popen(args.command, stdin=subprocess.DEVNULL)

    def stop(_signum: int, _frame: object) -> None:
        # SIGINT makes milvus-server stop its child, but only when it is not busy
        # starting it; SIGTERM to the child (the Go server) stops it cleanly anyway.
        for pid in _others():
            try:
                os.kill(pid, signal.SIGINT if pid == server.pid else signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=relay_forever, args=(listener, INNER_PORT), daemon=True).start()
    while server.poll() is None and not _healthy():
        time.sleep(0.2)
    if server.poll() is None and args.ready:
        args.ready.write_text(json.dumps({"pid": os.getpid(), "port": args.port}))
    # Poll, not wait(): the kernel may hand SIGTERM to a relay thread, and Python runs
    # the handler only when the main thread gets back to its loop.
    while (code := server.poll()) is None:
        time.sleep(0.2)
    listener.close()
    _reap_others(STOP_GRACE_S)
    return code


def _others() -> list[int]:
    """Our process group's other members: milvus-server and the server it started."""
    group, own, found = os.getpgrp(), os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(stat.parent.name)
        if int(fields[2]) == group and pid != own and fields[0] != "Z":
            found.append(pid)
    return found


def _reap_others(grace: float) -> None:
    """Wait for the rest of the group to end; kill what is left after ``grace`` seconds."""
    deadline = time.monotonic() + grace
    while (others := _others()) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in others:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


if __name__ == "__main__":
    sys.exit(main())
