"""Model calls run on the process's main thread when a server hands it over.

torch's OpenMP runtime keeps a thread pool for every thread that ever ran a
parallel op; once a process holds more such threads than CPUs, every parallel
region of the model pays a wake-up. The main thread plus its pool fits the CPUs;
a request thread's pool does not (docs/performance.md, "The main-thread worker").

So a gunicorn worker (app/model/gunicorn_worker.py) gives its main thread to
:func:`serve` and runs its connection loop on another thread, and the encoder
sends model calls through :func:`call`. Where nothing serves (tests, the CLI,
the trainer, ``flask run``) :func:`call` runs the function where it is.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")

_POLL_S = 0.5  # how often serve() looks at its stop condition while idle


class MainThreadRunner:
    """A queue of calls that the main thread runs while it serves."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[tuple[Future[object], Callable[[], object]]]
        self._calls = queue.SimpleQueue()
        self._serving = False

    @property
    def serving(self) -> bool:
        return self._serving

    def call(self, function: Callable[[], T]) -> T:
        """``function()``, run on the main thread if it serves, else right here."""
        if not self._serving or threading.current_thread() is threading.main_thread():
            return function()
        future: Future[T] = Future()
        self._calls.put((future, function))  # type: ignore[arg-type]
        if not self._serving:  # serve() ended between the check and the put
            self._drain()
        return future.result()

    def serve(self, done: Callable[[], bool], *, then: Callable[[], object] | None = None) -> None:
        """Run queued calls on this (the main) thread until ``done()`` is true.

        ``then`` runs once serving has begun (the worker starts its connection
        loop there), so no request can come before calls go to this thread.
        Calls queued after ``done()`` run on their callers' threads.
        """
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("MainThreadRunner.serve must run on the main thread")
        self._serving = True
        try:
            if then is not None:
                then()
            while not done():
                try:
                    future, function = self._calls.get(timeout=_POLL_S)
                except queue.Empty:
                    continue
                _run(future, function)
        finally:
            self._serving = False
            self._drain()

    def _drain(self) -> None:
        while True:
            try:
                future, function = self._calls.get_nowait()
            except queue.Empty:
                return
            _run(future, function)


def _run(future: Future[object], function: Callable[[], object]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(function())
    except Exception as exc:  # noqa: BLE001 - re-raised in the caller's thread
        future.set_exception(exc)
    except BaseException as exc:  # SystemExit from a signal handler: the caller fails, we exit
        future.set_exception(exc)
        raise


_RUNNER = MainThreadRunner()


def call(function: Callable[[], T]) -> T:
    """Run ``function`` on the main thread of this process if it serves calls."""
    return _RUNNER.call(function)


def in_passing_thread(function: Callable[[], T]) -> T:
    """``function()`` on a thread that ends with it, unless called on the main thread.

    For torch work that is not a model call, such as loading another model after a
    reindex switched it: an OpenMP pool that work gives its thread dies with the
    thread, instead of slowing the model for as long as a request thread lives.
    """
    if threading.current_thread() is threading.main_thread():
        return function()
    future: Future[T] = Future()
    thread = threading.Thread(target=_run, args=(future, function), name="torch-once")
    thread.start()
    thread.join()
    return future.result()


def serve(done: Callable[[], bool], *, then: Callable[[], object] | None = None) -> None:
    """Give the main thread to model calls until ``done()``; see the module docstring."""
    _RUNNER.serve(done, then=then)
