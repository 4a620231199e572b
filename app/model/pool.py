"""Encoders by model name, loaded once per process, so a switch of model costs one load."""

from __future__ import annotations

import threading
from collections.abc import Callable

from app.model.encoder import Encoder


class EncoderPool:
    """Encoders by model name, loaded once per process; only those in use are kept."""

    def __init__(self, load: Callable[[str], Encoder]) -> None:
        self._load = load
        self._loaded: dict[str, Encoder] = {}
        self._wanted: dict[str, set[str]] = {}  # by owner (one per gallery's Serving)
        self._lock = threading.Lock()

    def get(self, name: str) -> Encoder:
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = self._load(name)
            return self._loaded[name]

    def keep(self, names: set[str], *, owner: str = "") -> None:
        """Forget the models no owner wants (requests using one hold their own reference).

        Each gallery's Serving is an owner: one gallery moving to a new model must not
        unload the model another gallery still searches with.
        """
        with self._lock:
            self._wanted[owner] = set(names)
            wanted = set().union(*self._wanted.values())
            for name in set(self._loaded) - wanted:
                del self._loaded[name]
