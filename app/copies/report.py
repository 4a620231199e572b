"""The duplicates report: groups with sizes and the suggested keeper; table, CSV, JSON.

The keeper is the largest original (most pixels, then most bytes): the copy that
lost least to resizing and re-compression.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass

from PIL import Image

from app.copies.decision import CopyRule
from app.copies.finder import Found
from app.copies.threshold import Calibration
from app.exceptions import LookalikeError
from app.gallery.keys import original_name
from app.gallery.storage import ImageStore


@dataclass(frozen=True)
class Member:
    id: str
    key: str
    label: str
    width: int = 0
    height: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class Group:
    members: list[Member]  # the keeper first
    keep: str  # key of the suggested keeper
    scores: list[tuple[str, str, float]]  # (key, key, score) of the pairs that joined it

    @property
    def ids(self) -> list[str]:
        return [m.id for m in self.members]


@dataclass(frozen=True)
class DuplicateReport:
    threshold: float
    calibrated: bool
    groups: list[Group]
    scanned: int
    method: str
    seconds: float
    verified: bool = False  # threshold = the candidate threshold; pairs geometrically verified

    @property
    def copies(self) -> int:
        """Images that would go if every group kept its keeper."""
        return sum(len(g.members) - 1 for g in self.groups)


def build_report(
    found: Found,
    calibration: Calibration,
    images: ImageStore | None = None,
    threshold: float | None = None,
) -> DuplicateReport:
    """Sizes from the image store (when given) and the keeper of each group."""
    by_group: dict[int, list[tuple[str, str, float]]] = {}
    group_of = {id_: n for n, group in enumerate(found.groups) for id_ in group}
    for pair in found.pairs:
        ka, kb = found.rows[pair.a].key, found.rows[pair.b].key
        by_group.setdefault(group_of[pair.a], []).append((ka, kb, round(pair.score, 4)))
    groups = []
    for n, ids in enumerate(found.groups):
        members = [
            _member(found.rows[i].id, found.rows[i].key, found.rows[i].label, images) for i in ids
        ]
        members.sort(key=lambda m: (-m.width * m.height, -m.bytes, m.key))
        groups.append(Group(members, members[0].key, by_group.get(n, [])))
    verified = threshold is None and CopyRule.of(calibration).verifies
    return DuplicateReport(
        threshold if threshold is not None else CopyRule.of(calibration).floor,
        calibration.calibrated and threshold is None,
        groups,
        found.scanned,
        found.method,
        round(found.seconds, 3),
        verified,
    )


def _member(id_: str, key: str, label: str, images: ImageStore | None) -> Member:
    if images is None:
        return Member(id_, key, label)
    try:
        data = images.get(original_name(key))
    except LookalikeError:  # gone from the store: `gallery check` reports it
        return Member(id_, key, label)
    try:
        with Image.open(io.BytesIO(data)) as image:  # the header only: no decode
            width, height = image.size
    except Exception:  # noqa: BLE001 - an unreadable header: size unknown, still listed
        width = height = 0
    return Member(id_, key, label, width, height, len(data))


def as_table(report: DuplicateReport) -> str:
    lines = [
        f"{len(report.groups)} groups, {report.copies} copies among {report.scanned} "
        f"images ({'candidates from' if report.verified else 'threshold'} "
        f"{report.threshold:.4f}{', verified' if report.verified else ''}"
        f"{'' if report.calibrated else ', not calibrated'}; {report.method} "
        f"search, {report.seconds:.1f} s)"
    ]
    for n, group in enumerate(report.groups, 1):
        lines.append(f"group {n}:")
        for m in group.members:
            mark = "keep  " if m.key == group.keep else "      "
            size = f"{m.width}x{m.height} {m.bytes} B" if m.bytes else "size unknown"
            lines.append(f"  {mark}{m.key}  {m.label or '-'}  {size}")
        for a, b, score in group.scores:
            lines.append(f"        {a[:12]}.. ~ {b[:12]}.. {score:.4f}")
    return "\n".join(lines)


CSV_FIELDS = ["group", "key", "label", "width", "height", "bytes", "keep", "best_score"]


def as_csv(report: DuplicateReport) -> str:
    """One line per image: its group, size, whether it is the keeper, its best score."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for n, group in enumerate(report.groups, 1):
        for m in group.members:
            best = max((s for a, b, s in group.scores if m.key in (a, b)), default="")
            writer.writerow(
                [
                    n,
                    m.key,
                    _cell(m.label),
                    m.width,
                    m.height,
                    m.bytes,
                    "yes" if m.key == group.keep else "no",
                    best,
                ]
            )
    return out.getvalue()


def _cell(text: str) -> str:
    """Labels are user input: keep a spreadsheet from reading one as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def as_json(report: DuplicateReport) -> str:
    data = asdict(report)
    data["copies"] = report.copies
    for group, raw in zip(report.groups, data["groups"], strict=True):
        raw["scores"] = [{"a": a, "b": b, "score": s} for a, b, s in group.scores]
    return json.dumps(data, indent=1)


def report_from_json(data: dict) -> DuplicateReport:
    """A report as ``as_json`` wrote it (the admin page keeps the last one in a file)."""
    groups = [
        Group(
            [Member(**m) for m in g["members"]],
            g["keep"],
            [(s["a"], s["b"], s["score"]) for s in g["scores"]],
        )
        for g in data["groups"]
    ]
    return DuplicateReport(
        data["threshold"],
        data["calibrated"],
        groups,
        data["scanned"],
        data["method"],
        data["seconds"],
        bool(data.get("verified", False)),
    )
