"""The collection switch: a new collection, filled and indexed, then the alias moved to it.

Both the reindex job (app/jobs/reindex.py) and ``trainer index`` put a new
generation into service this way. The alias moves in one ``alter_alias`` while
uploads are held (app/jobs/state.py), after the caller caught up on what changed
meanwhile; until then the old collection keeps serving, and a failure or a
cancel drops the half-built one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.exceptions import LookalikeError
from app.jobs.state import JobFiles, gallery_frozen

if TYPE_CHECKING:  # pymilvus: imported by whoever hands us a store
    from app.vectors.records import ModelStamp
    from app.vectors.store import VectorStore

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """The operator asked the job to stop (cancel button, SIGTERM or Ctrl+C)."""


class Steps:
    """What the collection switch reports to its caller and asks it; by default nothing."""

    def indexing(self) -> None:
        """The new collection is full; its index is being built."""

    def switching(self) -> None:
        """About to wait until no upload runs, then move the alias."""

    def waiting(self) -> None:
        """Still waiting for uploads in progress to finish."""

    def catch_up(self, old: str, new: str) -> None:
        """With the gallery held still: bring ``new`` up to date with ``old``."""

    def cancelled(self) -> bool:
        return False

    def check(self) -> None:
        if self.cancelled():
            raise Cancelled


@dataclass(frozen=True)
class Switched:
    collection: str  # the new collection
    previous: str | None  # what the alias pointed to before (None: not moved, or new alias)


def switch_collection(
    vectors: VectorStore, stamp: ModelStamp, fill: Callable[[str], None], *,
    files: JobFiles, steps: Steps | None = None, switch: bool = True,
) -> Switched:
    """Create a collection for ``stamp``, ``fill`` it, build its index, then move the alias.

    The reindex job and ``trainer index`` both switch this way. Until the alias
    moves, any failure (or ``Cancelled``) drops the new collection and the old
    one keeps serving. With ``switch=False`` the new collection is only built.
    """
    steps = steps or Steps()
    new = vectors.create_collection(stamp)
    try:
        fill(new)
        steps.indexing()
        vectors.wait_for_index(new, serving=False)
        steps.check()
        previous = move_alias(vectors, files, new, steps) if switch else None
    except BaseException:
        drop_quietly(vectors, new)
        raise
    return Switched(new, previous)


def move_alias(vectors: VectorStore, files: JobFiles, new: str, steps: Steps) -> str | None:
    """Catch up on gallery changes made meanwhile, then move the alias to ``new``.

    Uploads are held while this runs, so nothing written between the catch-up
    and the switch is lost. Returns the collection the alias pointed to before.
    """
    steps.switching()
    with gallery_frozen(files, cancelled=steps.cancelled, waiting=steps.waiting) as frozen:
        if not frozen:
            raise Cancelled
        old = vectors.resolve()
        if old:
            steps.catch_up(old, new)
            vectors.mark_served(old)
        steps.check()
        previous = vectors.switch_to(new)
    vectors.mark_served(new)
    return previous


def drop_quietly(vectors: VectorStore, collection: str) -> None:
    try:
        vectors.drop(collection)
    except LookalikeError as exc:  # the next job tries again
        log.warning("could not drop %s: %s", collection, exc.message)
