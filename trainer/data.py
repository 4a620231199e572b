"""Labelled image sets: folder-per-class, CSV manifests, DeepFashion In-Shop, Grocery Store.

Every reader returns a :class:`Dataset` with four lists of samples. ``train``
is what the model learns from, ``val`` picks the best epoch, and ``query`` is
searched against ``gallery`` for the retrieval protocol. Where a layout has no
split of its own the split is deterministic (a hash of each path), so two runs,
or a training run and a later evaluation, always see the same partition.
"""

from __future__ import annotations

import csv
import hashlib
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

from app.exceptions import BadRequest
from app.gallery import imaging
from app.gallery.sources import IMAGE_SUFFIXES

SPLITS = ("train", "val", "query", "gallery")
QUERY_FRACTION = 0.2  # of each label, for layouts without a query/gallery split


@dataclass(frozen=True)
class Sample:
    path: str  # a file path (absolute once read)
    label: str


@dataclass(frozen=True)
class Dataset:
    """The four splits of one labelled image set, and where it came from."""

    source: str
    layout: str
    train: list[Sample] = field(default_factory=list)
    val: list[Sample] = field(default_factory=list)
    query: list[Sample] = field(default_factory=list)
    gallery: list[Sample] = field(default_factory=list)
    hashed: bool = False  # query/gallery made by the hash split, not given by the data

    def summary(self) -> dict[str, object]:
        return {
            "source": self.source,
            "layout": self.layout,
            **{name: len(getattr(self, name)) for name in SPLITS},
            "labels": len({s.label for s in self.train + self.query + self.gallery}),
        }


def load_image(path: str) -> Image.Image:
    """An RGB image through the app's one decode path (EXIF, modes, size limits)."""
    return imaging.decode(Path(path).read_bytes()).image


def load_dataset(data: str | Path, *, val_ratio: float = 0.1, seed: int = 0) -> Dataset:
    """Read DATA in whichever layout it has, then make sure it has a validation split."""
    from trainer.gallery import download_gallery, is_gallery

    root = Path(download_gallery(str(data))) if is_gallery(data) else Path(data)
    if not root.exists():
        raise BadRequest(f"{root} does not exist: give a folder-per-class tree, a CSV "
                         "manifest, an In-Shop root, a Grocery Store root, or 'gallery'.")
    for reader in (read_csv, read_inshop, read_grocery, read_folders):
        dataset = reader(root)
        if dataset is not None:
            return with_validation(dataset, val_ratio=val_ratio, seed=seed)
    raise BadRequest(f"{root} holds no images in a layout we know.")


def with_validation(dataset: Dataset, *, val_ratio: float, seed: int) -> Dataset:
    """Carve ``val_ratio`` of each training label out for validation, unless a split exists."""
    if dataset.val or val_ratio <= 0 or not dataset.train:
        return dataset
    rng = random.Random(seed)
    train, val = [], []
    for samples in _by_label(dataset.train).values():
        samples = sorted(samples, key=lambda s: s.path)
        rng.shuffle(samples)
        n_val = val_count(len(samples), val_ratio)
        val += samples[:n_val]
        train += samples[n_val:]
    return replace(dataset, train=sorted(train, key=_order), val=sorted(val, key=_order))


def val_count(n: int, ratio: float) -> int:
    """Validation images for a label of ``n``: two at least once ``n >= 5``, so that each
    validation image has a positive to find; none below three."""
    if n < 3:
        return 0
    count = int(round(n * ratio))
    return max(count, 2) if n >= 5 else count


def read_folders(root: Path) -> Dataset | None:
    """``root/<label>/*.jpg`` (any depth below the label folder)."""
    if not root.is_dir():
        return None
    samples = [
        Sample(str(path.resolve()), path.relative_to(root).parts[0])
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
        and len(path.relative_to(root).parts) > 1
    ]
    return _hash_split(str(root), "folders", samples) if samples else None


def read_csv(path: Path) -> Dataset | None:
    """``path,label[,split]`` rows, a header optional; paths relative to the CSV's folder."""
    if path.suffix.lower() != ".csv" or not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = [[c.strip() for c in row] for row in csv.reader(handle)
                if any(c.strip() for c in row)]
    if rows and [c.lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    splits: dict[str, list[Sample]] = defaultdict(list)
    plain: list[Sample] = []
    for row in rows:
        if len(row) < 2:
            raise BadRequest(f"{path}: every row needs path,label; got {row!r}.")
        sample = Sample(str((path.parent / row[0]).resolve()), row[1])
        split = row[2].lower() if len(row) > 2 and row[2] else ""
        if split and split not in SPLITS:
            raise BadRequest(f"{path}: unknown split {row[2]!r}; use one of {', '.join(SPLITS)}.")
        (splits[split] if split else plain).append(sample)
    if not splits:
        return _hash_split(str(path), "csv", plain)
    return Dataset(str(path), "csv", **{name: splits[name] for name in SPLITS})


def read_inshop(root: Path) -> Dataset | None:
    """DeepFashion In-Shop: ``list_eval_partition.txt`` with train/query/gallery rows."""
    candidates = [root, root / "Eval", root / "Anno", root / "eval"]
    partition = next((c / "list_eval_partition.txt" for c in candidates
                      if (c / "list_eval_partition.txt").is_file()), None)
    if partition is None:
        return None
    image_root = next((d for d in (root, root / "Img", partition.parent.parent)
                       if (d / "img").is_dir()), root)
    splits = parse_inshop_partition(partition.read_text().splitlines(), image_root)
    return Dataset(str(root), "inshop", train=splits["train"], query=splits["query"],
                   gallery=splits["gallery"])


def parse_inshop_partition(lines: Iterable[str], image_root: Path) -> dict[str, list[Sample]]:
    """Rows ``image_name item_id evaluation_status`` after a count line and a header."""
    splits: dict[str, list[Sample]] = {"train": [], "query": [], "gallery": []}
    for line in lines:
        parts = line.split()
        if len(parts) != 3 or parts[2] not in splits:
            continue  # the count line, the header, blank lines
        name, item, status = parts
        splits[status].append(Sample(str(image_root / name), item))
    return splits


def read_grocery(root: Path) -> Dataset | None:
    """Grocery Store: ``{train,val,test}.txt`` rows ``path, fine_id, coarse_id``.

    train -> train and gallery, val -> val, test -> query (the dataset's own
    product-retrieval protocol); labels are the fine class names of classes.csv.
    """
    base = root / "dataset" if (root / "dataset" / "train.txt").is_file() else root
    if not root.is_dir() or not (base / "train.txt").is_file() or not (base / "test.txt").is_file():
        return None
    names = _grocery_names(base / "classes.csv")

    def read(split: str) -> list[Sample]:
        if not (base / f"{split}.txt").is_file():
            return []
        rows = [line.split(",") for line in (base / f"{split}.txt").read_text().splitlines()]
        return [Sample(str((base / r[0].strip()).resolve()), names.get(r[1].strip(), r[1].strip()))
                for r in rows if len(r) >= 2]

    train = read("train")
    return Dataset(str(root), "grocery", train=train, val=read("val"), query=read("test"),
                   gallery=train)


def _grocery_names(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[1:]
    return {row[1].strip(): row[0].strip() for row in rows if len(row) > 1}


def _hash_split(source: str, layout: str, samples: list[Sample]) -> Dataset:
    """Queries: the ``QUERY_FRACTION`` of each label whose path hashes lowest (at least one
    where a label has two or more images); the rest are both training set and gallery."""
    query, gallery = [], []
    for group in _by_label(samples).values():
        ranked = sorted(group, key=lambda s: hashlib.sha1(s.path.encode()).hexdigest())
        n_query = max(1, int(len(ranked) * QUERY_FRACTION)) if len(ranked) >= 2 else 0
        query += ranked[:n_query]
        gallery += ranked[n_query:]
    query.sort(key=_order)
    gallery.sort(key=_order)
    return Dataset(source, layout, train=list(gallery), query=query, gallery=gallery, hashed=True)


def _by_label(samples: Iterable[Sample]) -> dict[str, list[Sample]]:
    groups: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        groups[sample.label].append(sample)
    return dict(sorted(groups.items()))


def _order(sample: Sample) -> tuple[str, str]:
    return (sample.label, sample.path)


def label_ids(samples: Iterable[Sample]) -> tuple[list[int], dict[str, int]]:
    """Integer labels for a list of samples, and the label -> id mapping used."""
    samples = list(samples)
    mapping = {label: i for i, label in enumerate(sorted({s.label for s in samples}))}
    return [mapping[s.label] for s in samples], mapping
