"""Dataset readers and splits: folders, CSV manifests, In-Shop, Grocery Store."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.exceptions import BadRequest
from trainer.data import load_dataset, parse_inshop_partition, read_inshop, with_validation

INSHOP = """\
52712
image_name item_id evaluation_status
img/WOMEN/Dresses/id_00000002/02_1_front.jpg id_00000002 train
img/WOMEN/Dresses/id_00000002/02_2_side.jpg  id_00000002 train
img/MEN/Denim/id_00000080/01_1_front.jpg     id_00000080 query
img/MEN/Denim/id_00000080/01_2_side.jpg      id_00000080 gallery
img/MEN/Denim/id_00000080/01_3_back.jpg      id_00000080 gallery
"""


def test_the_inshop_partition_parser_reads_each_split(tmp_path: Path) -> None:
    splits = parse_inshop_partition(INSHOP.splitlines(), tmp_path)
    assert [len(splits[k]) for k in ("train", "query", "gallery")] == [2, 1, 2]
    assert splits["query"][0].label == "id_00000080"
    assert splits["query"][0].path == str(tmp_path / "img/MEN/Denim/id_00000080/01_1_front.jpg")


def test_an_inshop_root_with_an_eval_folder_is_recognised(tmp_path: Path) -> None:
    (tmp_path / "Eval").mkdir()
    (tmp_path / "Eval" / "list_eval_partition.txt").write_text(INSHOP)
    (tmp_path / "img").mkdir()
    dataset = read_inshop(tmp_path)
    assert dataset is not None and dataset.layout == "inshop"
    assert (len(dataset.train), len(dataset.query), len(dataset.gallery)) == (2, 1, 2)


def test_folders_split_deterministically_into_queries_and_gallery(colour_folders: Path) -> None:
    first = load_dataset(colour_folders, val_ratio=0.25, seed=0)
    again = load_dataset(colour_folders, val_ratio=0.25, seed=0)
    assert first == again
    assert len(first.query) == 4 and len(first.gallery) == 28  # 1 of 8 per label: 20%, floored
    assert not {s.path for s in first.query} & {s.path for s in first.gallery}
    assert not {s.path for s in first.val} & {s.path for s in first.train}
    assert len(first.val) == 8  # 25% of 7, rounded, at least two per label


def test_a_csv_manifest_keeps_its_splits_and_repeated_paths(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text(
        "path,label,split\na.jpg,x,train\nb.jpg,x,train\na.jpg,x,gallery\nc.jpg,x,query\n"
    )
    dataset = load_dataset(tmp_path / "m.csv", val_ratio=0.0)
    assert [Path(s.path).name for s in dataset.train] == ["a.jpg", "b.jpg"]
    assert [Path(s.path).name for s in dataset.gallery] == ["a.jpg"]
    assert [Path(s.path).name for s in dataset.query] == ["c.jpg"]
    assert Path(dataset.query[0].path).parent == tmp_path


def test_a_csv_with_an_unknown_split_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("a.jpg,x,test\n")
    with pytest.raises(BadRequest, match="unknown split"):
        load_dataset(tmp_path / "m.csv")


def test_the_grocery_layout_maps_test_to_queries_and_train_to_gallery(tmp_path: Path) -> None:
    base = tmp_path / "dataset"
    base.mkdir()
    (base / "classes.csv").write_text("Class Name (str),Class ID (int)\nGolden,0\nGranny,1\n")
    (base / "train.txt").write_text("train/a.jpg, 0, 0\ntrain/b.jpg, 1, 0\n")
    (base / "val.txt").write_text("val/c.jpg, 0, 0\n")
    (base / "test.txt").write_text("test/d.jpg, 1, 0\n")
    dataset = load_dataset(tmp_path)
    assert dataset.layout == "grocery"
    assert [s.label for s in dataset.train] == ["Golden", "Granny"]
    assert dataset.gallery == dataset.train
    assert [Path(s.path).name for s in dataset.val] == ["c.jpg"]
    assert [s.label for s in dataset.query] == ["Granny"]


def test_validation_is_left_alone_when_the_data_has_one(colour_folders: Path) -> None:
    dataset = load_dataset(colour_folders, val_ratio=0.0)
    assert dataset.val == []
    assert with_validation(dataset, val_ratio=0.5, seed=1).val != []
