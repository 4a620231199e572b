"""atomic_write: whole files or none, with the mode asked for."""

from __future__ import annotations

import errno
import stat
from pathlib import Path

import pytest

from app.files import atomic_write


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_write_creates_folders_and_replaces_the_old_content(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.json"
    atomic_write(path, b"old")
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new" and mode_of(path) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_a_private_file_gets_its_mode_before_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    atomic_write(path, b"hash\n", mode=0o600)
    assert mode_of(path) == 0o600


def test_without_overwrite_the_first_writer_wins(tmp_path: Path) -> None:
    path = tmp_path / "once"
    atomic_write(path, b"first", overwrite=False)
    with pytest.raises(FileExistsError):
        atomic_write(path, b"second", overwrite=False)
    assert path.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["once"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    atomic_write(path, b"old")

    def disk_full(src: str, dst: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("app.files.os.replace", disk_full)
    with pytest.raises(OSError, match="No space"):
        atomic_write(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
