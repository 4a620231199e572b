"""What every benchmark section's Markdown shares: the targets and the number formats."""

from __future__ import annotations

from typing import Any

TARGETS = {
    "roofline": 0.7,
    "naive_speedup": 2.5,
    "cosine": 0.999,
    "recall_points": 0.5,
    "non_model": 0.15,
    "server_recall": 0.99,
    "server_p50_ms": 10.0,
    "ingest_ratio": 0.85,
    "concurrency_ratio": 0.9,
    "bucket_ratio": 0.9,
    "ray_ratio": 0.8,
}


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def fmt(stat: dict[str, Any], digits: int = 1) -> str:
    if stat.get("n", 1) == 1:
        return f"{stat['median']:.{digits}f}"
    return f"{stat['median']:.{digits}f} ({stat['low']:.{digits}f}–{stat['high']:.{digits}f})"


def measured_by(run: dict[str, Any] | None) -> list[str]:
    """How a section was measured, where it was re-measured after the first run."""
    if not run:
        return []
    load = ", ".join(f"{x:.1f}" for x in run["load_average"])
    return [f"Measured by `{run['command']}`, started {run['started']}, load average {load}.", ""]
