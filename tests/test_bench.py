"""The benchmark suite runs end to end in its quick configuration (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import nginx_executable

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_quick_benchmark_writes_every_section(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--no-compile", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=1500,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert {"encoder", "search", "latency", "ingest", "box", "filtered"} <= set(report)
    assert all(r["recall_at_10"] > 0 for r in
               report["filtered"]["results"]["lite/2000"]["by_filter"].values())
    vit = report["encoder"]["models"]["dinov2-s14-random"]
    assert vit["gflop_per_image"] > 10  # ViT-S/14 at 224 px is ~11 GFLOP
    assert all(0 < m["roofline_fraction_best"] for m in vit["modes"].values())
    eight_clients = report["latency"]["lite"]["concurrency"]["8"]
    assert eight_clients["errors"] == 0
    assert eight_clients["cpu_ms_per_request"]["workers"] > 0  # the workers encoded the uploads
    through_nginx = report["latency"]["lite"]["latency_nginx"]
    if nginx_executable() is None:
        assert "nginx is not installed" in through_nginx["skipped"]
    else:  # the same uploads went through nginx and were answered by the app
        assert through_nginx["embed_ms"]["p50"] > 0
        assert through_nginx["total_ms"]["p50"] > through_nginx["embed_ms"]["p50"]
    overload = report["overload"]
    if "skipped" not in overload:  # 64 clients, one worker: answered or shed, nothing else
        assert overload["shedding"]["other"] == overload["no_shedding"]["other"] == {}
        assert overload["no_shedding"]["shed"] == 0
    markdown = (tmp_path / "report.md").read_text()
    backends = report["encoder-backends"]["models"]["dinov2-s14-random"]["variants"]
    assert {"torch fp32", "onnxruntime fp32", "auto"} <= set(backends)
    failed = {name: v["error"] for name, v in backends.items()
              if "error" in v and "requirements-backends.txt" not in v["error"]}
    assert not failed, f"every backend installed here must run: {failed}"
    assert all(v["min_cosine_to_fp32"] >= 0.999 for v in backends.values() if "error" not in v)
    for heading in ("## 1. Encoder throughput", "## 1b. Encoder backends", "## 2. Query latency",
                    "## 3. Search scaling", "## 4. Ingest throughput",
                    "## 7. Search with a box", "## 8. Filtered search",
                    "## 9. Duplicates", "## 10. Indexing a bucket in place",
                    "## 11. Overload and load shedding"):
        assert heading in markdown
    assert ("through nginx: p50 ms" in markdown) == (nginx_executable() is not None)

    # Re-measuring one section keeps the others and says how it was measured.
    again = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--update", "--only", "ingest",
         "--ingest-photos", "8", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    updated = json.loads((tmp_path / "report.json").read_text())
    assert updated["command"] == report["command"] and updated["encoder"] == report["encoder"]
    assert "--update --only ingest" in updated["ingest"]["run"]["command"]
    assert updated["ingest"]["run"] != report["ingest"]["run"]
    assert "Measured by `python -m bench --quick --update --only ingest" in (
        tmp_path / "report.md").read_text()
