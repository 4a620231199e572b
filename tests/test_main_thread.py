"""Model calls on the main thread (app/main_thread.py) and the gunicorn worker that
hands its main thread over (app/gunicorn_worker.py), run under a real gunicorn."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.model.main_thread import MainThreadRunner, in_passing_thread
from tests.helpers import wait_until
from tests.s3server import free_port
from tests.servers import HOST, ROOT, clean_environ, fetch, stop_process, wait_for_port


def test_without_a_server_calls_run_where_they_are() -> None:
    runner = MainThreadRunner()
    seen: list[threading.Thread] = []
    thread = threading.Thread(target=lambda: seen.append(runner.call(threading.current_thread)))
    thread.start()
    thread.join()
    assert seen == [thread]


def test_while_serving_calls_from_other_threads_run_on_the_main_thread() -> None:
    runner = MainThreadRunner()
    results: dict[int, object] = {}

    def wait_for_serving() -> None:
        wait_until(lambda: runner.serving, 10, "the main thread to serve", interval=0.001)

    def caller(n: int) -> None:
        wait_for_serving()
        try:
            results[n] = runner.call(lambda: (threading.current_thread(), n * n))
        except ValueError as exc:
            results[n] = exc

    def failing() -> None:
        wait_for_serving()
        try:
            runner.call(lambda: int("not a number"))
        except ValueError as exc:
            results[-1] = exc

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(6)]
    threads.append(threading.Thread(target=failing))
    for thread in threads:
        thread.start()
    runner.serve(lambda: all(not t.is_alive() for t in threads))
    assert not runner.serving
    main = threading.main_thread()
    assert {n: results[n] for n in range(6)} == {n: (main, n * n) for n in range(6)}
    assert isinstance(results[-1], ValueError)  # raised in the caller, not on the main thread


def test_serve_refuses_any_thread_but_the_main_one() -> None:
    runner = MainThreadRunner()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            runner.serve(lambda: True)
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    thread.join()
    assert len(errors) == 1 and "main thread" in str(errors[0])


def test_calls_after_serving_ends_run_in_their_callers() -> None:
    runner = MainThreadRunner()
    runner.serve(lambda: True)
    seen: list[threading.Thread] = []
    thread = threading.Thread(target=lambda: seen.append(runner.call(threading.current_thread)))
    thread.start()
    thread.join(10)
    assert seen == [thread]


def test_threads_started_by_then_find_the_main_thread_serving() -> None:
    runner = MainThreadRunner()
    seen: list[threading.Thread] = []
    # Started from `then`, the callers do not wait for serving: it has begun already.
    callers = [threading.Thread(target=lambda: seen.append(runner.call(threading.current_thread)))
               for _ in range(4)]

    def start_callers() -> None:
        for caller in callers:
            caller.start()

    runner.serve(lambda: all(not c.is_alive() for c in callers), then=start_callers)
    assert seen == [threading.main_thread()] * 4


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_torch_work_in_a_passing_thread_leaves_no_openmp_pool_behind() -> None:
    """Work such as a model load, asked for by a request thread, must not leave that
    thread an OpenMP pool: live pools beyond the cores slow the model down."""
    import torch

    def parallel_op() -> float:
        return float(((torch.zeros(8, 3, 224, 224) - 1.0) / 2.0).sum())

    counts: dict[str, int] = {}

    def request_thread() -> None:
        previous = torch.get_num_threads()
        torch.set_num_threads(2)  # so that a parallel op starts a pool even on one core
        try:
            counts["before"] = _threads()
            assert in_passing_thread(parallel_op) == -8 * 3 * 224 * 224 / 2
            # Its pool's threads exit just after it.
            wait_until(lambda: _threads() <= counts["before"], 10, "the passing pool to exit")
            counts["after passing"] = _threads()
            parallel_op()
            counts["after direct"] = _threads()
        finally:
            torch.set_num_threads(previous)

    thread = threading.Thread(target=request_thread)
    thread.start()
    thread.join()
    assert counts["after passing"] == counts["before"]
    assert counts["after direct"] > counts["before"]  # the pool the passing thread spared us
    assert in_passing_thread(threading.current_thread) is threading.main_thread()


PROBE = '''
import pathlib, threading, time
from app.model import main_thread

STARTED = pathlib.Path(__file__).with_name("started")  # the test waits for it

def slow_call(seconds):
    if seconds:
        STARTED.touch()
    time.sleep(seconds)  # a deliberately slow model call, not a synchronisation
    return threading.current_thread() is threading.main_thread()

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/boom":
        main_thread.call(lambda: 1 / 0)
    seconds = float(path.strip("/") or 0) if path != "/thread" else 0
    on_main = main_thread.call(lambda: slow_call(seconds))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"main" if on_main else b"other"]
'''


@pytest.fixture
def probe_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "probe.py").write_text(PROBE)
    port = free_port()
    log = tmp_path / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "--pythonpath", str(tmp_path),
               "-k", "app.model.gunicorn_worker.MainThreadModelWorker", "--threads", "4",
               "--workers", "1", "--bind", f"{HOST}:{port}", "--graceful-timeout", "20",
               "--no-control-socket", "probe:app"]
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=clean_environ(), stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, process, 60, "gunicorn", log)
        yield process, f"http://{HOST}:{port}", log
    finally:
        stop_process(process, signal.SIGTERM, timeout=30)


def test_gunicorn_worker_runs_calls_on_its_main_thread(probe_server) -> None:  # type: ignore[no-untyped-def]
    _, url, log = probe_server
    replies = []
    threads = [threading.Thread(target=lambda: replies.append(fetch(url + "/thread", timeout=30)))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [(r.status, r.body) for r in replies] == [(200, b"main")] * 6
    failed = fetch(url + "/boom", timeout=30)
    assert failed.status == 500  # an error in a call is the request's, and the worker lives on
    assert fetch(url + "/thread", timeout=30).body == b"main"
    assert "ZeroDivisionError" in log.read_text()


def test_gunicorn_worker_finishes_a_running_call_on_sigterm(probe_server) -> None:  # type: ignore[no-untyped-def]
    process, url, log = probe_server
    replies = []
    slow = threading.Thread(target=lambda: replies.append(fetch(url + "/1.5", timeout=30)))
    slow.start()
    started = log.with_name("started")
    wait_until(started.exists, 30, "the call to run on the worker's main thread")
    process.send_signal(signal.SIGTERM)
    slow.join(30)
    assert [(r.status, r.body) for r in replies] == [(200, b"main")]
    assert process.wait(30) == 0
