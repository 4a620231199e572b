"""The audit log: who did what to the gallery, and when.

One JSON object per line in ``instance/audit.log`` (appended with O_APPEND, so
lines from several workers and the reindex job do not interleave), and the same
line on the ``lookalike.audit`` logger for whoever collects the app's logs.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import current_app, has_request_context, request, session

log = logging.getLogger("lookalike.audit")

FILE_NAME = "audit.log"
TAIL_BYTES = 256 * 1024  # how far back from the end ``recent`` reads


@dataclass(frozen=True)
class AuditEntry:
    time: str
    user: str
    ip: str
    action: str
    details: dict[str, Any] = field(default_factory=dict)


def record(action: str, *, user: str | None = None, **details: Any) -> AuditEntry:
    """Append one entry; the user and IP come from the request when there is one."""
    in_request = has_request_context()
    entry = AuditEntry(
        time=datetime.now(UTC).isoformat(timespec="seconds"),
        user=user if user is not None else (session.get("admin_user", "") if in_request else ""),
        ip=(request.remote_addr or "") if in_request else "",
        action=action,
        details={k: v for k, v in details.items() if v is not None},
    )
    line = json.dumps(entry.__dict__, ensure_ascii=False, default=str)
    log.info("%s", line)
    path = _path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
    except OSError as exc:  # the action happened; losing its log line must not undo it
        log.error("could not write the audit log %s: %s", path, exc)
    return entry


def recent(limit: int = 20) -> list[AuditEntry]:
    """The last ``limit`` entries, newest first."""
    path = _path()
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - TAIL_BYTES))
            lines = handle.read().decode(errors="replace").splitlines()
    except OSError:
        return []
    entries: list[AuditEntry] = []
    for line in reversed(lines):
        try:
            data = json.loads(line)
            entries.append(AuditEntry(data["time"], data["user"], data["ip"], data["action"],
                                      data.get("details") or {}))
        except (ValueError, KeyError, TypeError):
            continue  # the first, partial line of the tail, or a damaged one
        if len(entries) == limit:
            break
    return entries


def _path() -> Path:
    return Path(current_app.instance_path) / FILE_NAME
