"""Static URLs carry a hash of the file (``/static/style.css?v=3f2a...``).

A new version of a file gets a new URL, so nginx can tell browsers to keep
static files for a year (nginx/lookalike.conf.template) and a deploy is still
seen at once.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import Flask


def init_app(app: Flask) -> None:
    folder = app.static_folder

    @app.url_defaults
    def add_static_version(endpoint: str, values: dict[str, Any]) -> None:
        if endpoint != "static" or "v" in values or not folder:
            return
        path = Path(folder) / str(values.get("filename", ""))
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return
        values["v"] = _digest(str(path), mtime)


@lru_cache(maxsize=256)
def _digest(path: str, mtime: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
