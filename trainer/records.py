"""A run's metrics per epoch, as CSV and JSON, and its training curves."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from trainer import plots


def write_history(out: Path, history: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(k for row in history for k in row))
    with (out / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
    (out / "metrics.json").write_text(json.dumps(history, indent=2) + "\n")
    plots.training_curves(history, out / "training_curves.png")
