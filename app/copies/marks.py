"""Not-duplicates marks: groups an operator said are different pictures.

Kept by content id (the sha256 of the image bytes), which a reindex does not
change, in a small JSON file per serving alias under the instance folder: the
folder every process of a deployment already shares for its job files and locks
(docs/architecture.md, "Reindex"). A collection property would be lost when a
reindex makes a new collection. A pair whose two images are in one mark is not
counted as a copy; a new copy of either still is.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from app.exceptions import BadRequest
from app.files import atomic_write
from app.gallery.keys import is_valid_id

SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


class Marks:
    """The "not duplicates" marks of one gallery (one serving alias)."""

    def __init__(self, instance_path: str | Path, alias: str) -> None:
        folder = Path(instance_path) / "copies"
        name = SAFE_NAME.sub("_", alias) or "gallery"
        self.path = folder / f"{name}.not-duplicates.json"
        self._lock_path = folder / f"{name}.not-duplicates.lock"

    def groups(self) -> list[frozenset[str]]:
        """Every marked group of ids."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, json.JSONDecodeError) as exc:
            raise BadRequest(
                f"The duplicate marks in {self.path} cannot be read ({exc}); "
                "fix or delete the file."
            ) from exc
        return [frozenset(g["ids"]) for g in data.get("groups", []) if g.get("ids")]

    def add(self, ids: Iterable[str], *, by: str = "") -> frozenset[str]:
        """Mark these images as different pictures of each other."""
        group = frozenset(ids)
        if len(group) < 2 or not all(is_valid_id(i) for i in group):
            raise BadRequest("Mark at least two gallery images (by content id) as not duplicates.")
        with self._locked():
            data = self._read_raw()
            data["groups"].append(
                {
                    "ids": sorted(group),
                    "by": by[:64],
                    "date": datetime.now(UTC).isoformat(timespec="seconds"),
                }
            )
            atomic_write(self.path, json.dumps(data, indent=1).encode())
        return group

    def separator(self) -> Separator:
        return Separator(self.groups())

    def _read_raw(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"version": 1, "groups": []}
        if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
            raise BadRequest(
                f"The duplicate marks in {self.path} are not in the expected "
                "format; fix or delete the file."
            )
        return data

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Other processes' read-modify-write waits: no mark is lost to a race."""
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


class Separator:
    """Answers "did an operator say these two are not copies?" in constant time."""

    def __init__(self, groups: list[frozenset[str]]) -> None:
        self._of: dict[str, set[int]] = {}
        for n, group in enumerate(groups):
            for id_ in group:
                self._of.setdefault(id_, set()).add(n)

    def separates(self, a: str, b: str) -> bool:
        return bool(self._of.get(a, set()) & self._of.get(b, set()))

    def __bool__(self) -> bool:
        return bool(self._of)
