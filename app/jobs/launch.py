"""Run a reindex (or rollback) here, or start it as a detached process from a web worker.

The web button must not run the job in the request: the request would time
out, and a gunicorn worker restart would kill it. ``start`` takes the job lock,
writes a "queued" state and starts ``flask index rebuild`` as its own session,
handing it the locked file descriptor, so there is no moment at which a second
start could slip in. The child gets the web app's configuration through
``LOOKALIKE_*`` variables (the app may have been built from a mapping in tests)
and writes its output to ``instance/reindex.log``. Where the lock lives (a file
lock handed over as an fd, or a Redis lease handed over as a token) is
app/coordination/'s business.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from flask import Flask, has_app_context

from app import extensions
from app.coordination import coordination
from app.coordination.base import JobLock
from app.exceptions import LookalikeError
from app.galleries.current import all_job_files, job_files
from app.galleries.registry import Gallery
from app.jobs.reindex import Progress, Reindexer
from app.jobs.state import JobFiles, JobState

log = logging.getLogger(__name__)

COMMANDS = {"reindex": "rebuild", "rollback": "rollback"}
# Handles of jobs this process started, polled so that finished ones are reaped.
_CHILDREN: list[subprocess.Popen[bytes]] = []


def start(app: Flask, kind: str, *, user: str, model: str | None = None) -> JobState:
    """Start a job process for the current gallery; raises JobRunning if one is running
    already (for any gallery: one at a time per machine, see ``take_job_lock``).

    ``model`` (a reindex from the API) encodes with that model instead of the
    gallery's; the caller has checked it. The job process reads it from the state.
    """
    gallery = current_gallery(app)
    files = job_files(app, gallery.name)
    reap()
    lock = take_job_lock(app, files)
    state = JobState(id=new_id(), kind=kind, phase="queued", user=user,
                     model=model or gallery.model, started=time.time(),
                     message="starting the job process")
    try:
        files.clear_cancel()
        files.write(state)
        files.root.mkdir(parents=True, exist_ok=True)
        with open(files.log, "ab") as output:
            child = subprocess.Popen(
                job_command(kind, lock.handoff_args(), state.id, user, gallery.name),
                cwd=_root(), env=child_env(app), stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT, pass_fds=lock.pass_fds,
                start_new_session=True,  # survives the request, the worker and its ^C
            )
    except OSError as exc:
        lock.release()
        state = replace(state, phase="failed", finished=time.time(),
                        error=f"Could not start the job process: {exc}.")
        files.write(state)
        return state
    _CHILDREN.append(child)
    lock.handed_over(child)  # the child holds the lock from here on; reaped when it ends
    return replace(state, pid=child.pid)


def job_command(kind: str, lock_args: list[str], job_id: str, user: str, gallery: str
                ) -> list[str]:
    """The job process's command line: ``flask index rebuild|rollback`` with the lock."""
    return [sys.executable, "-m", "flask", "--app", "app:create_app()", "index",
            COMMANDS[kind], *lock_args, "--job-id", job_id, "--user", user,
            "--gallery", gallery]


def current_gallery(app: Flask) -> Gallery:
    """The gallery the job is for: the request's or command's (the default outside one)."""
    if has_app_context():
        return extensions.gallery()
    with app.app_context():
        return extensions.gallery()


def take_job_lock(app: Flask, files: JobFiles) -> JobLock:
    """The job lock of ``files``' gallery, if no gallery's job runs on this machine (or,
    with Redis, in this deployment).

    One job at a time: a reindex takes every core it is given, so two at once would
    each take twice as long and slow searches down twice as much.
    """
    coordinator = coordination(app)
    others = {} if coordinator.shared else all_job_files(app)
    return coordinator.take_job_lock(files, others)


def run_here(
    app: Flask,
    kind: str,
    *,
    user: str = "",
    lock_fd: int | None = None,
    lock_token: str | None = None,
    job_id: str = "",
    batch_size: int | None = None,
    on_change: Callable[[JobState], None] | None = None,
    ray_address: str | None = None,
) -> JobState:
    """Run a job in this process (the CLI, or the child ``start`` made). Needs an app context."""
    files = job_files(app)
    lock, state = _take_lock(app, files, kind, user=user, lock_fd=lock_fd,
                             lock_token=lock_token, job_id=job_id)
    try:
        _be_nice(int(app.config.get("REINDEX_NICE") or 0))
        state = replace(state, pid=os.getpid(), phase="loading", message="connecting")
        progress = Progress(files, state, on_change)
        progress.set()
        final = _execute(app, progress, batch_size, ray_address)
        _record(files, final, kind, user)
        return final
    finally:
        files.clear_cancel()
        lock.release()


def _ray_step(app: Flask, address: str | None) -> Callable[..., None] | None:
    """The reindex's encode step on Ray (``--ray``), or None for the in-process one."""
    if address is None:
        return None
    from app.cluster.run import reindex_step

    return reindex_step(app, address)


def _execute(app: Flask, progress: Progress, batch_size: int | None,
             ray_address: str | None = None) -> JobState:
    """Reach Milvus and the image store, then run the job; an unreachable one fails it."""
    from app.buckets.originals import reader
    from app.extensions import build_encoder, images
    from app.vectors.connect import connect_milvus

    try:
        reindexer = Reindexer(
            connect_milvus(app, alias=extensions.gallery().alias), images(),
            load=lambda name: build_encoder(app, name),
            progress=progress, batch_size=batch_size or int(app.config["BATCH_SIZE"]),
            max_pixels=int(app.config["MAX_IMAGE_PIXELS"]), read_in_place=reader(app),
            copy_sample=int(app.config["COPY_CALIBRATION_SAMPLE"]),
            encode_sources=_ray_step(app, ray_address),
        )
    except LookalikeError as exc:
        return progress.finish("failed", error=exc.message)
    return reindexer.execute()


def _record(files: JobFiles, final: JobState, kind: str, user: str) -> None:
    """Keep a finished job for the admin page (and rollback), and audit every outcome."""
    from app import audit

    if final.phase == "done":
        files.record_success(final)
    audit.record(f"{kind}.{final.phase}", user=user or "cli", job=final.id,
                 old=final.old_collection, new=final.new_collection, images=final.done,
                 failed=final.failed, seconds=round(final.duration_s, 1),
                 error=final.error or None)


def _take_lock(
    app: Flask, files: JobFiles, kind: str, *, user: str, lock_fd: int | None,
    lock_token: str | None, job_id: str
) -> tuple[JobLock, JobState]:
    model = extensions.gallery().model
    if lock_fd is None and lock_token is None:
        lock = take_job_lock(app, files)
        files.clear_cancel()
        state = JobState(id=new_id(), kind=kind, user=user, model=model, started=time.time())
        return lock, state
    # Handed over by ``start``: this succeeds only if we hold it.
    lock = coordination(app).adopt_job_lock(lock_fd=lock_fd, lock_token=lock_token)
    state = files.read()
    if state.id != job_id:
        state = JobState(id=job_id, kind=kind, user=user, model=model, started=time.time())
    return lock, state


def running_message(state: JobState) -> str:
    if not state.active:
        return "A reindex is already running. Wait for it to finish, or cancel it."
    since = datetime.fromtimestamp(state.started).strftime("%H:%M:%S") if state.started else "?"
    who = f" by {state.user}" if state.user else ""
    return (f"A {state.kind} is already running ({state.phase}, {state.done}/{state.total} "
            f"images, started{who} at {since}, job {state.id}). Wait for it to finish, or "
            "cancel it.")


def child_env(app: Flask) -> dict[str, str]:
    """The environment for a job process: ours, plus this app's settings as LOOKALIKE_*."""
    from app.config import Config

    env = dict(os.environ)
    for key in (k for k in dir(Config) if k.isupper() and k in app.config):
        try:
            env[f"LOOKALIKE_{key}"] = json.dumps(app.config[key])
        except (TypeError, ValueError):
            continue
    env["LOOKALIKE_INSTANCE_PATH"] = app.instance_path
    return env


def reap() -> None:
    """Collect the exit status of finished job processes (no zombies left behind)."""
    for child in list(_CHILDREN):
        if child.poll() is not None:
            _CHILDREN.remove(child)


def new_id() -> str:
    return f"{datetime.now():%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def _be_nice(increment: int) -> None:
    if increment > 0:
        try:
            os.nice(increment)
        except OSError:
            log.warning("could not lower the reindex's CPU priority")


def _root() -> str:
    from app import ROOT

    return str(ROOT)
