"""The malloc settings of model processes: freed activation buffers stay mapped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Allocates, touches and frees buffers of the sizes a forward pass uses, then
# prints the minor page faults per round once warm.
PROGRAM = """
import resource, sys
import numpy as np
if sys.argv[1] == "tuned":
    from app.model.allocator import keep_buffers_mapped
    assert keep_buffers_mapped()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
sizes = (1 << 20, 3 << 19, 1 << 21, 1 << 18)  # float64 counts: 8, 12, 16, 2 MB
for _ in range(3):
    buffers = [np.ones(n) for n in sizes]
    del buffers
start = faults()
for _ in range(20):
    buffers = [np.ones(n) for n in sizes]
    del buffers
print((faults() - start) / 20)
"""


def faults_per_round(mode: str) -> float:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MALLOC_") and k != "LD_PRELOAD"}
    out = subprocess.run([sys.executable, "-c", PROGRAM, mode], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="glibc malloc settings are Linux-only")
def test_freed_buffers_are_reused_instead_of_faulted_in_again() -> None:
    default, tuned = faults_per_round("default"), faults_per_round("tuned")
    assert default > 1000  # glibc maps and unmaps each buffer: the problem being fixed
    assert tuned < 50


def test_an_operator_choice_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.model import allocator

    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert allocator._apply() is False
