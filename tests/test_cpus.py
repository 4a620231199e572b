"""available_cpus: the affinity mask, capped by a cgroup v2 or v1 CPU quota."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.model.cpus import available_cpus, cgroup_quota


@pytest.fixture
def affinity(monkeypatch: pytest.MonkeyPatch) -> int:
    """Pretend the scheduler lets this process run on 8 CPUs."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    return 8


def test_without_a_quota_the_affinity_mask_counts(tmp_path: Path, affinity: int) -> None:
    assert cgroup_quota(tmp_path) is None
    assert available_cpus(tmp_path) == affinity
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cpus(tmp_path) == affinity


def test_a_cgroup_v2_quota_caps_the_count_rounding_up(tmp_path: Path, affinity: int) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_quota(tmp_path) == 1.5
    assert available_cpus(tmp_path) == 2


def test_a_cgroup_v1_quota_caps_the_count(tmp_path: Path, affinity: int) -> None:
    folder = tmp_path / "cpu,cpuacct"
    folder.mkdir()
    (folder / "cpu.cfs_quota_us").write_text("300000\n")
    (folder / "cpu.cfs_period_us").write_text("100000\n")
    assert available_cpus(tmp_path) == 3
    (folder / "cpu.cfs_quota_us").write_text("-1\n")  # v1's "no limit"
    assert available_cpus(tmp_path) == affinity


def test_a_quota_above_the_mask_or_below_one_cpu_is_bounded(
    tmp_path: Path, affinity: int
) -> None:
    (tmp_path / "cpu.max").write_text("6400000 100000\n")
    assert available_cpus(tmp_path) == affinity
    (tmp_path / "cpu.max").write_text("10000 100000\n")
    assert available_cpus(tmp_path) == 1
