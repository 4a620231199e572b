"""Exported models on disk, one folder per model, backend, version and precision.

An export takes seconds to minutes, so it runs once and is reused by every worker
and restart. A folder is only ever used whole: it is built under a temporary name
and renamed into place, its manifest records the key it was built for and a hash
of every file, and a folder whose manifest, key or files do not match (a crash
mid-write, a disk error, an older format) is deleted and rebuilt. Workers that
start together take a file lock, so one builds and the others wait and load.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
MANIFEST = "export.json"
FORMAT = 1


def folder_name(key: dict[str, Any]) -> str:
    """A readable, collision-free folder name: fingerprint, backend, precision, key hash."""
    digest = hashlib.blake2b(json.dumps(key, sort_keys=True).encode(), digest_size=6).hexdigest()
    return f"{key['fingerprint']}-{key['backend']}-{key['precision']}-{digest}"


def cached(root: Path, key: dict[str, Any], build: Callable[[Path], None],
           load: Callable[[Path], T]) -> T:
    """Load the export for ``key`` from ``root``, building (or rebuilding) it first if needed.

    ``build(folder)`` writes the export's files into an empty folder; ``load(folder)``
    opens them. A load that fails on a folder that passed its checks is taken as a
    corrupt export too: rebuilt once, and a second failure is raised.
    """
    root.mkdir(parents=True, exist_ok=True)
    key = {"format": FORMAT, **key}
    folder = root / folder_name(key)
    with locked(root / f".{folder.name}.lock"):
        if _valid(folder, key):
            try:
                return load(folder)
            except (RuntimeError, OSError, ValueError) as error:  # what the runtimes raise
                log.warning("export %s did not load (%s); rebuilding it", folder.name, error)
        elif folder.exists():
            log.warning("export %s is stale or corrupt; rebuilding it", folder.name)
        _build(folder, key, build)
        return load(folder)


def _build(folder: Path, key: dict[str, Any], build: Callable[[Path], None]) -> None:
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        build(partial)
        files = {p.name: _digest(p) for p in sorted(partial.iterdir()) if p.is_file()}
        (partial / MANIFEST).write_text(json.dumps({"key": key, "files": files}, indent=2) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _valid(folder: Path, key: dict[str, Any]) -> bool:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = manifest["files"]
        return manifest["key"] == key and bool(files) and all(
            _digest(folder / name) == digest for name, digest in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
