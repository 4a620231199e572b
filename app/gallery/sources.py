"""Where gallery images come from: files, folders (recursive), zip archives, uploads.

A ``Source`` reads its bytes only when the ingest pipeline asks, so a folder of
100k photos is walked, not loaded. Labels come from a CSV (``path,label[,...]``)
or from each file's parent folder.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.exceptions import BadRequest

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
MAX_ZIP_MEMBERS = 100_000
MAX_MEMBER_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Source:
    """One candidate image: a name to report, a way to read it, its label."""

    name: str
    read: Callable[[], bytes]
    label: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Labels:
    """Labels and metadata by path, read from a CSV ``path,label[,extra...]``."""

    by_path: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    by_name: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def from_csv(cls, path: Path) -> Labels:
        """Paths are relative to the CSV's folder; a header row names extra columns."""
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
        if not rows:
            return cls()
        header = [c.strip().lower() for c in rows[0]]
        names = header if header[:2] == ["path", "label"] else None
        by_path: dict[str, tuple[str, dict[str, Any]]] = {}
        by_name: dict[str, tuple[str, dict[str, Any]]] = {}
        for row in rows[1:] if names else rows:
            if len(row) < 2:
                raise BadRequest(f"{path}: every row needs at least path,label; got {row!r}.")
            extra = row[2:]
            meta = (
                dict(zip(names[2:], extra, strict=False)) if names
                else ({"extra": extra} if extra else {})
            )
            value = (row[1].strip(), meta)
            file_path = row[0].strip()
            by_path[str((path.parent / file_path).resolve())] = value
            by_path[file_path] = value
            by_name[Path(file_path).name] = value
        return cls(by_path, by_name)

    def lookup(self, *candidates: str) -> tuple[str, dict[str, Any]] | None:
        for candidate in candidates:
            if candidate in self.by_path:
                return self.by_path[candidate]
        return self.by_name.get(Path(candidates[-1]).name) if candidates else None


def collect(
    paths: Iterable[Path], *, labels: Labels | None = None, label_from_folder: bool = False
) -> Iterator[Source]:
    """Sources for image files, folders (recursively, sorted) and .zip archives."""
    for path in paths:
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if child.suffix.lower() in IMAGE_SUFFIXES:
                    yield _file_source(child, labels, label_from_folder)
        elif path.suffix.lower() == ".zip":
            yield from zip_sources(path, labels=labels, label_from_folder=label_from_folder)
        elif path.is_file():
            yield _file_source(path, labels, label_from_folder)
        else:
            raise BadRequest(f"{path} does not exist.")


def _file_source(path: Path, labels: Labels | None, label_from_folder: bool) -> Source:
    label, meta = _label_for(labels, label_from_folder, str(path.resolve()), str(path))
    meta = {**meta, "source": path.name}
    return Source(str(path), path.read_bytes, label, meta)


def zip_sources(
    archive: Path | Any, *, name: str | None = None, labels: Labels | None = None,
    label_from_folder: bool = False,
) -> Iterator[Source]:
    """Sources for the image members of a zip (a path or an open binary file).

    Members are read one at a time, with a size cap per member against zip bombs.
    """
    display = name or str(archive)
    try:
        bundle = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadRequest(f"{display} is not a readable zip archive.") from exc
    members = [
        m for m in bundle.infolist()
        if not m.is_dir() and Path(m.filename).suffix.lower() in IMAGE_SUFFIXES
        and not Path(m.filename).name.startswith("._")  # macOS resource forks
    ]
    if len(members) > MAX_ZIP_MEMBERS:
        raise BadRequest(f"{display} has {len(members)} images; the limit is {MAX_ZIP_MEMBERS}.")
    for member in members:
        label, meta = _label_for(labels, label_from_folder, member.filename, member.filename)
        meta = {**meta, "source": Path(member.filename).name}
        yield Source(f"{display}:{member.filename}", _member_reader(bundle, member), label, meta)


def _member_reader(bundle: zipfile.ZipFile, member: zipfile.ZipInfo) -> Callable[[], bytes]:
    def read() -> bytes:
        if member.file_size > MAX_MEMBER_BYTES:
            raise BadRequest(
                f"{member.filename} is {member.file_size:,} bytes unpacked; "
                f"the limit is {MAX_MEMBER_BYTES:,}."
            )
        with bundle.open(member) as handle:
            data = handle.read(MAX_MEMBER_BYTES + 1)
        if len(data) > MAX_MEMBER_BYTES:
            raise BadRequest(f"{member.filename} unpacks to more than {MAX_MEMBER_BYTES:,} bytes.")
        return data

    return read


def _label_for(
    labels: Labels | None, from_folder: bool, *candidates: str
) -> tuple[str, dict[str, Any]]:
    found = labels.lookup(*candidates) if labels else None
    if found:
        return found[0], dict(found[1])
    if from_folder:
        parent = Path(candidates[-1]).parent.name
        return parent, {}
    return "", {}
