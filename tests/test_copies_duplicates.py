"""Duplicate groups in a gallery: found by `gallery duplicates`, kept apart by marks."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from app.copies.finder import Pair, union_groups
from app.copies.marks import Marks
from app.gallery.imaging import content_hash


def add(runner, *paths: Path) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["gallery", "add", *map(str, paths), "--label-from-folder"])
    assert result.exit_code == 0, result.output


def duplicates(runner, *options: str) -> dict:  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["gallery", "duplicates", "--format", "json", *options])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def keys_of(report: dict) -> list[set[str]]:
    return [{m["key"] for m in group["members"]} for group in report["groups"]]


@pytest.fixture
def planted(tmp_path: Path, photos) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    """A smaller, re-compressed copy of the astronaut, in its own folder (the tiny random
    test model is no judge of harder copies)."""
    folder = tmp_path / "copies" / "reposts"
    folder.mkdir(parents=True)
    data = smaller(photos["astronaut"], 300, quality=70)
    (folder / "astronaut-repost.jpg").write_bytes(data)
    return {"folder": folder.parent, "copy": data, "original": photos["astronaut"]}


def smaller(data: bytes, size: int, *, quality: int) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image.thumbnail((size, size))  # keeps the aspect: a resized copy, not a distorted one
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def key_of(data: bytes) -> str:
    return f"{content_hash(data)}.jpg"


def test_union_find_joins_chains_and_keeps_groups_apart() -> None:
    pairs = [Pair("a", "b", 0.99), Pair("b", "c", 0.98), Pair("x", "y", 0.97)]
    assert union_groups(pairs) == [["a", "b", "c"], ["x", "y"]]
    assert union_groups([]) == []


@pytest.mark.parametrize("method", ["exact", "range"])
def test_a_planted_copy_is_found_with_the_original_to_keep(
    runner, gallery_dir: Path, planted, method: str
) -> None:
    add(runner, gallery_dir, planted["folder"])
    assert runner.invoke(args=["index", "calibrate", "--sample", "7"]).exit_code == 0
    report = duplicates(runner, "--method", method)
    assert report["calibrated"] and report["method"] == method
    assert report["verified"]  # candidates from the calibration, geometrically verified
    assert keys_of(report) == [{key_of(planted["original"]), key_of(planted["copy"])}]
    group = report["groups"][0]
    assert group["keep"] == key_of(planted["original"])  # 512 px against 300 px
    assert group["members"][0]["width"] == 512
    assert group["scores"][0]["score"] >= report["threshold"]
    assert report["copies"] == 1 and report["scanned"] == 7


def test_table_and_csv_list_the_same_group(
    runner, gallery_dir: Path, planted, tmp_path: Path
) -> None:
    add(runner, gallery_dir, planted["folder"])
    assert runner.invoke(args=["index", "calibrate"]).exit_code == 0
    table = runner.invoke(args=["gallery", "duplicates"]).output
    assert "1 groups, 1 copies among 7 images" in table
    assert f"keep  {key_of(planted['original'])}" in table
    out = tmp_path / "dups.csv"
    written = runner.invoke(args=["gallery", "duplicates", "--format", "csv", "--output", str(out)])
    assert written.exit_code == 0, written.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith("group,key,label")
    assert sorted(line.split(",")[6] for line in lines[1:]) == ["no", "yes"]


def test_a_threshold_of_one_finds_no_copy(runner, gallery_dir: Path, planted) -> None:
    add(runner, gallery_dir, planted["folder"])
    assert duplicates(runner, "--threshold", "1.0")["groups"] == []


def test_not_duplicates_marks_survive_a_new_run_and_a_reindex(
    app, runner, gallery_dir: Path, planted, tmp_path: Path
) -> None:
    add(runner, gallery_dir, planted["folder"])
    assert runner.invoke(args=["index", "calibrate"]).exit_code == 0
    group = duplicates(runner)["groups"][0]
    with app.app_context():
        from app.extensions import serving

        Marks(app.instance_path, serving().store.alias).add(
            [m["id"] for m in group["members"]], by="tester"
        )
    assert duplicates(runner)["groups"] == []
    rebuilt = runner.invoke(args=["index", "rebuild"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "(precision" in runner.invoke(args=["index", "status"]).output  # calibrated again
    assert duplicates(runner)["groups"] == []
    # A new copy of the same picture is not covered by the mark.
    again = tmp_path / "again" / "reposts"
    again.mkdir(parents=True)
    second = smaller(planted["original"], 256, quality=80)
    (again / "second.jpg").write_bytes(second)
    add(runner, again.parent)
    found = keys_of(duplicates(runner))
    assert len(found) == 1 and key_of(second) in found[0]


def test_marks_need_two_valid_ids(tmp_path: Path) -> None:
    from app.exceptions import BadRequest

    marks = Marks(tmp_path, "gallery")
    with pytest.raises(BadRequest):
        marks.add(["a" * 64])
    with pytest.raises(BadRequest):
        marks.add(["../x", "b" * 64])
    assert marks.groups() == []
