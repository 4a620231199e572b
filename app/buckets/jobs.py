"""A source's sync as a background process, started from the admin page.

Like the reindex button (app/jobs/launch.py): the request must not run the
sync (it would time out, and a worker restart would kill it), so it starts
``flask gallery sync s3://...`` as its own session with this app's settings,
its output in ``instance/bucket-sync-<id>.log``. The sync takes the source's
lock and writes its progress to the catalog, which any worker reads for the page.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from flask import Flask

from app.buckets.catalog import SourceRecord
from app.coordination.base import SourceCatalog, SyncLocks
from app.jobs.launch import child_env
from app.jobs.state import JobRunning


def start_sync(app: Flask, catalog: SourceCatalog, source: SourceRecord, locks: SyncLocks) -> int:
    """Start a sync process for ``source``; returns its pid. JobRunning if one runs."""
    from app.extensions import gallery

    if (holder := locks.holder(source)) is not None:
        raise JobRunning(f"A sync of {source.location} is already running ({holder}).")
    catalog.update(source.id, phase="queued", done=0, message="starting the sync process")
    command = [
        sys.executable,
        "-m",
        "flask",
        "--app",
        "app:create_app()",
        "gallery",
        "sync",
        str(source.location),
        "--gallery",
        gallery().name,
        *(["--ray"] if app.config.get("RAY_ADDRESS") else []),  # as the reindex button does
    ]
    with open(Path(app.instance_path) / f"bucket-sync-{source.id}.log", "ab") as output:
        child = subprocess.Popen(
            command,
            cwd=_root(),
            env=child_env(app),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    threading.Thread(target=child.wait, name=f"reap-sync-{child.pid}", daemon=True).start()
    return child.pid


def _root() -> str:
    from app import ROOT

    return str(ROOT)
