"""The audit log: who did what to the gallery, and when.

One JSON object per line on the ``lookalike.audit`` logger, for whoever collects
the app's logs, and in the store the admin page reads: ``instance/audit.log``
in the embedded default, a capped Redis list shared by every web server with
``LOOKALIKE_REDIS_URL`` (app/coordination/).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import has_request_context, request, session

from app.coordination import coordination

log = logging.getLogger("lookalike.audit")



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
    coordination().audit_log().append(line)  # logs, does not raise, if it cannot
    return entry


def recent(limit: int = 20) -> list[AuditEntry]:
    """The last ``limit`` entries, newest first."""
    entries: list[AuditEntry] = []
    for line in coordination().audit_log().lines(limit):
        try:
            data = json.loads(line)
            entries.append(AuditEntry(data["time"], data["user"], data["ip"], data["action"],
                                      data.get("details") or {}))
        except (ValueError, KeyError, TypeError):
            continue  # the first, partial line of a file's tail, or a damaged one
        if len(entries) == limit:
            break
    return entries
