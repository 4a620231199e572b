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
        self._lock = threading.Lock()

    def get(self, name: str) -> Encoder:
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = self._load(name)
            return self._loaded[name]

    def keep(self, names: set[str]) -> None:
        """Forget the others (requests still using one hold their own reference)."""
        with self._lock:
            for name in set(self._loaded) - names:
                del self._loaded[name]
