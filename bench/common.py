"""Measuring helpers: repeated timings with median and range, machine peak, memory.

Every figure of the report is a ratio against something measured in the same
run (the machine's matmul peak, the encoder alone, exact search), because these
machines are shared and absolute timings drift by 2x from one minute to the next.
"""

from __future__ import annotations

import os
import platform
import socket
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
MOBILENET = SHARED / "models" / "mobilenet_v2_1.0_224"
GROCERY = SHARED / "datasets" / "grocery" / "dataset"


@dataclass(frozen=True)
class Stat:
    """Median and range of repeated measurements."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stat:
        return cls(statistics.median(samples), min(samples), max(samples), len(samples))

    def fmt(self, digits: int = 1) -> str:
        if self.n == 1:
            return f"{self.median:.{digits}f}"
        return f"{self.median:.{digits}f} ({self.low:.{digits}f}–{self.high:.{digits}f})"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def roofline_precision() -> str:
    """The precision of this CPU's fastest matmul: bf16 where it has bf16 matrix hardware
    (AVX512-BF16, AMX), else fp32. Without that hardware torch emulates bf16 matmuls
    (BENCHMARKS.md, 1b), so their rate is no roofline and is not measured."""
    from app.model.encoder import bf16_supported

    return "bf16" if bf16_supported("cpu") else "fp32"


def roofline_gflops() -> float:
    """The best dense matmul rate now, in :func:`roofline_precision`."""
    return matmul_gflops(torch.bfloat16 if roofline_precision() == "bf16" else torch.float32)


def matmul_gflops(dtype: torch.dtype, *, size: int = 2048, reps: int = 5) -> float:
    """Best dense matmul rate seen in ``reps`` tries: the machine's practical peak now."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    for _ in range(2):
        a @ b
    best = 0.0
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best


def images_per_second(run: Callable[[], Any], count: int, *, warmup: int = 1,
                      reps: int = 3) -> Stat:
    """Throughput of ``run`` (which handles ``count`` images), median of ``reps`` runs."""
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        run()
        samples.append(count / (time.perf_counter() - start))
    return Stat.of(samples)


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = int(line.split()[1]) // 1024
    except OSError:
        pass
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_mb": memory,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average": os.getloadavg(),
    }


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process (VmRSS now, or VmHWM: its peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used, all its threads together."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_s() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine since boot, all cores together.

    Busy includes time the hypervisor gave to other guests (steal): 0.1% of this
    machine's time since boot, so it barely moves the "other processes" figure.
    """
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values[:8]) - idle) / tick, idle / tick  # guest time is already in user


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout:.0f} s")
