"""Evaluation through the app's Milvus HNSW search and exact search, and its report."""

from __future__ import annotations

import json
from pathlib import Path

from trainer.__main__ import get_args_parser, main


def test_evaluate_scores_a_run_through_milvus_and_writes_a_report(
    tiny_run: Path, tiny_model_dir: Path, colour_folders: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    code = main(["evaluate", "--model", str(tiny_run), "--data", str(colour_folders),
                 "--out", str(out), "--baseline", str(tiny_model_dir), "--precision", "fp32",
                 "--grid", "4"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["queries"] == 4 and results["gallery"] == 28 and results["dim"] == 16
    for search in ("hnsw", "exact"):
        assert set(results[search]) == {"R@1", "R@5", "R@10", "mAP@R"}
    # On 28 vectors HNSW is exact: the app's search and the reference agree.
    assert results["hnsw"] == results["exact"]
    assert len(results["recall_curve"]) == 50
    assert results["recall_curve"][0] == results["exact"]["R@1"]
    for name in ("recall_curve.png", "retrieval_grid.png", "training_curves.png", "report.md"):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    assert "![Recall@K](recall_curve.png)" in report and "| before:" in report
    assert json.loads((out / "baseline" / "results.json").read_text())["dim"] == 64


def test_a_previous_report_serves_as_the_baseline(tiny_model_dir: Path, colour_folders: Path,
                                                  tmp_path: Path) -> None:
    first, second = tmp_path / "zero-shot", tmp_path / "again"
    assert main(["evaluate", "--model", str(tiny_model_dir), "--data", str(colour_folders),
                 "--out", str(first), "--no-milvus", "--precision", "fp32"]) == 0
    assert main(["evaluate", "--model", str(tiny_model_dir), "--data", str(colour_folders),
                 "--out", str(second), "--baseline", str(first), "--no-milvus",
                 "--precision", "fp32"]) == 0
    assert not (second / "baseline").exists()
    assert "hnsw" not in json.loads((second / "results.json").read_text())


def test_data_without_a_query_split_is_a_clear_error(tiny_model_dir: Path, tmp_path: Path,
                                                     capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "m.csv").write_text("a.jpg,x,train\n")
    assert main(["evaluate", "--model", str(tiny_model_dir), "--data",
                 str(tmp_path / "m.csv")]) == 2
    assert "no query/gallery split" in capsys.readouterr().err


def test_every_subcommand_has_the_issue_options() -> None:
    parser = get_args_parser()
    args = parser.parse_args(["train", "--data", "d", "--backbone", "b", "--regime", "full",
                              "--out", "o", "--epochs", "3", "--dim", "64", "--val-ratio", "0.2"])
    assert (args.regime, args.epochs, args.dim, args.val_ratio) == ("full", 3, 64, 0.2)
    assert parser.parse_args(["export", "--run", "r", "--out", "m"]).command == "export"
    assert parser.parse_args(["index", "--model", "m", "--images", "i"]).command == "index"
