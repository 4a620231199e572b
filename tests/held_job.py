"""A reindex job process that holds still in one phase, so that a test can kill it there.

``python -m tests.held_job PHASE SECONDS <flask arguments>`` runs the job exactly
as ``flask`` would, with a progress listener that, on first reaching PHASE,
writes the job state and waits SECONDS. ``encoding`` is held half-way through
(rows written, more to come). The test swaps it in for ``launch.job_command``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from app.galleries.current import job_files
from app.jobs import launch
from app.jobs.state import JobFiles, JobState


def holding(phase: str, seconds: float, files: JobFiles) -> Callable[[JobState], None]:
    held = threading.Event()

    def hold(state: JobState) -> None:
        if held.is_set() or state.phase != phase:
            return
        if phase == "encoding" and state.done * 2 < state.total:
            return
        held.set()
        files.write(state)  # what the test waits for
        threading.Event().wait(seconds)  # until the test kills this process

    return hold


def main() -> None:
    phase, seconds, *flask_args = sys.argv[1:]
    run_here = launch.run_here

    def run_held(app, kind, *, on_change=None, **options):  # type: ignore[no-untyped-def]
        hold = holding(phase, float(seconds), job_files(app))  # files or Redis

        def both(state: JobState) -> None:
            if on_change is not None:
                on_change(state)
            hold(state)

        return run_here(app, kind, on_change=both, **options)

    launch.run_here = run_held  # the CLI looks it up when the command runs
    from flask.cli import main as flask_main

    sys.argv = ["flask", *flask_args]
    flask_main()


if __name__ == "__main__":
    main()
