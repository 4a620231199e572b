"""What a search asks for, parsed from request values and validated with clear 400s.

The same parameters come from the JSON API, the HTML forms and the "More
results" links: ``k``, ``offset``, ``label`` (repeated), ``metadata`` (a JSON
object), ``min_score``, ``box`` (``x0,y0,x1,y1`` fractions) and ``per_label``.
Values become typed fields here; nothing from the request reaches Milvus as text
(app/vectors/filters.py builds the expression).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from PIL import Image
from werkzeug.datastructures import MultiDict

from app.exceptions import BadRequest
from app.vectors.filters import KEY_PATTERN, RANGE_OPERATORS, Filters, MetadataCondition

MAX_WINDOW = 1000  # offset + k, so deep pages stay cheap for Milvus
MIN_BOX_SIDE = 0.02  # a box narrower or lower than this is a click, not a region
MAX_LABELS = 100
MAX_METADATA_KEYS = 16
MAX_VALUES = 100


@dataclass(frozen=True)
class Box:
    """A region as fractions of the image after EXIF orientation."""

    x0: float
    y0: float
    x1: float
    y1: float

    def crop(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        pixels = (round(self.x0 * width), round(self.y0 * height),
                  max(round(self.x1 * width), round(self.x0 * width) + 1),
                  max(round(self.y1 * height), round(self.y0 * height) + 1))
        return image.crop(pixels)

    def __str__(self) -> str:
        return ",".join(f"{v:.4g}" for v in (self.x0, self.y0, self.x1, self.y1))


@dataclass(frozen=True)
class SearchQuery:
    """One search's parameters; every field optional except k."""

    k: int
    offset: int = 0
    labels: tuple[str, ...] = ()
    metadata: tuple[MetadataCondition, ...] = ()
    min_score: float | None = None
    box: Box | None = None
    per_label: bool = False

    def filters(self, *, exclude_id: str = "") -> Filters:
        return Filters(self.labels, self.metadata, exclude_id)

    @property
    def filtered(self) -> bool:
        return bool(self.labels or self.metadata)

    def next_page(self) -> SearchQuery:
        return replace(self, offset=self.offset + self.k)

    def describe(self) -> dict[str, Any]:
        """The query as the JSON API echoes it."""
        return {
            "k": self.k, "offset": self.offset, "min_score": self.min_score,
            "box": [self.box.x0, self.box.y0, self.box.x1, self.box.y1] if self.box else None,
            "per_label": self.per_label,
            "filters": {"label": list(self.labels), "metadata": metadata_json(self.metadata)},
        }

    @property
    def metadata_param(self) -> str:
        """The metadata filter as the JSON text of the ``metadata`` parameter ("" if none)."""
        return json.dumps(metadata_json(self.metadata)) if self.metadata else ""

    def params(self) -> list[tuple[str, str]]:
        """The query as request values again (for links: next page, remove a filter)."""
        out = [("k", str(self.k))]
        out += [("offset", str(self.offset))] if self.offset else []
        out += [("label", label) for label in self.labels]
        out += [("metadata", self.metadata_param)] if self.metadata else []
        out += [("min_score", f"{self.min_score:g}")] if self.min_score is not None else []
        out += [("box", str(self.box))] if self.box else []
        out += [("per_label", "1")] if self.per_label else []
        return out


def parse_query(values: Mapping[str, Any], *, default_k: int, max_k: int) -> SearchQuery:
    """A SearchQuery from request values (form or query string), or a BadRequest."""
    multi = values if isinstance(values, MultiDict) else MultiDict(values)
    k = parse_k(multi.get("k"), default=default_k, maximum=max_k)
    offset = _whole(multi.get("offset"), "offset", default=0)
    if offset + k > MAX_WINDOW:
        raise BadRequest(f"offset + k must be at most {MAX_WINDOW}; got {offset} + {k}.")
    labels = tuple(dict.fromkeys(v for v in multi.getlist("label") if v != ""))
    if len(labels) > MAX_LABELS:
        raise BadRequest(f"At most {MAX_LABELS} labels at once; got {len(labels)}.")
    return SearchQuery(
        k=k, offset=offset, labels=labels,
        metadata=parse_metadata(multi.get("metadata")),
        min_score=_min_score(multi.get("min_score")),
        box=parse_box(multi.get("box")),
        per_label=_flag(multi.get("per_label"), "per_label"),
    )


def parse_k(raw: Any, *, default: int, maximum: int) -> int:
    """The number of results asked for, or a clear 400."""
    if raw is None or raw == "":
        return default
    try:
        k = int(str(raw).strip())
    except ValueError:
        raise BadRequest(
            f"k must be a whole number from 1 to {maximum}; got {str(raw)[:20]!r}.") from None
    if not 1 <= k <= maximum:
        raise BadRequest(f"k must be from 1 to {maximum}; got {k}.")
    return k


def parse_box(raw: str | None) -> Box | None:
    """``x0,y0,x1,y1`` as fractions, 0 <= x0 < x1 <= 1 and the same for y."""
    if raw is None or raw.strip() == "":
        return None
    usage = "box must be x0,y0,x1,y1: four fractions of the image from 0 to 1"
    try:
        numbers = [float(part) for part in raw.split(",")]
    except ValueError:
        raise BadRequest(f"{usage}; got {raw[:40]!r}.") from None
    if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
        raise BadRequest(f"{usage}; got {raw[:40]!r}.")
    box = Box(*numbers)
    if not (0 <= box.x0 < box.x1 <= 1 and 0 <= box.y0 < box.y1 <= 1):
        raise BadRequest(f"{usage}, with x0 < x1 and y0 < y1; got {raw[:40]!r}.")
    if box.x1 - box.x0 < MIN_BOX_SIDE or box.y1 - box.y0 < MIN_BOX_SIDE:
        raise BadRequest(f"box must be at least {MIN_BOX_SIDE:.0%} of the image wide and high.")
    return box


def parse_metadata(raw: str | None) -> tuple[MetadataCondition, ...]:
    """``{"brand": "Arla"}``, ``{"brand": ["Arla", "Alpro"]}``, ``{"price": {"lt": 20}}``."""
    if raw is None or raw.strip() == "":
        return ()
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"metadata must be a JSON object; it is not valid JSON ({exc.msg}).") from None
    if not isinstance(spec, dict):
        raise BadRequest("metadata must be a JSON object such as {\"brand\": \"Arla\"}.")
    if len(spec) > MAX_METADATA_KEYS:
        raise BadRequest(f"metadata may name at most {MAX_METADATA_KEYS} keys.")
    return tuple(_condition(key, value) for key, value in spec.items())


def metadata_json(conditions: tuple[MetadataCondition, ...]) -> dict[str, Any]:
    """Conditions back as the JSON object they were parsed from."""
    out: dict[str, Any] = {}
    for c in conditions:
        if c.ranges:
            out[c.key] = dict(c.ranges)
        elif len(c.values) == 1:
            out[c.key] = c.values[0]
        else:
            out[c.key] = list(c.values)
    return out


def _condition(key: str, value: Any) -> MetadataCondition:
    if not KEY_PATTERN.fullmatch(key):
        raise BadRequest(f"metadata key {key[:70]!r} must be 1-64 letters, digits or _.")
    if key.startswith("_"):  # Lookalike's own (app/buckets/inplace.py), never filtered on
        raise BadRequest(f"metadata key {key!r}: keys starting with _ are reserved.")
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(RANGE_OPERATORS))
        if unknown or not value:
            raise BadRequest(f"metadata {key!r}: a range takes lt, lte, gt, gte; "
                             f"got {', '.join(map(repr, unknown)) or 'nothing'}.")
        return MetadataCondition(key, ranges=tuple(
            (op, _number(bound, f"metadata {key!r} {op}")) for op, bound in value.items()))
    values = value if isinstance(value, list) else [value]
    if not values or len(values) > MAX_VALUES:
        raise BadRequest(f"metadata {key!r}: give 1 to {MAX_VALUES} values.")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, str | int | float) \
                or (isinstance(v, float) and not math.isfinite(v)):
            raise BadRequest(f"metadata {key!r}: values must be strings or numbers.")
    return MetadataCondition(key, values=tuple(values))


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"{what} must be a number; got {str(value)[:20]!r}.")
    return value


def _whole(raw: Any, name: str, *, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise BadRequest(f"{name} must be a whole number; got {str(raw)[:20]!r}.") from None
    if value < 0:
        raise BadRequest(f"{name} must not be negative; got {value}.")
    return value


def _min_score(raw: str | None) -> float | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:  # also refuses nan
        raise BadRequest(f"min_score must be a number from 0 to 1; got {raw[:20]!r}.")
    return value


def _flag(raw: str | None, name: str) -> bool:
    if raw in (None, "", "0"):
        return False
    if raw == "1":
        return True
    raise BadRequest(f"{name} must be 1 or 0; got {raw[:20]!r}.")


def active_filters(query: SearchQuery) -> list[tuple[str, SearchQuery]]:
    """Each active filter in words, with the query that drops it (back to the first page)."""
    first = replace(query, offset=0)
    out = [(f"label: {label}", replace(first, labels=tuple(x for x in query.labels
                                                          if x != label)))
           for label in query.labels]
    out += [(f"{c.key}: {json.dumps(metadata_json((c,))[c.key])}",
             replace(first, metadata=tuple(x for x in query.metadata if x != c)))
            for c in query.metadata]
    if query.min_score is not None:
        out.append((f"score ≥ {query.min_score:g}", replace(first, min_score=None)))
    if query.box:
        out.append((f"region {query.box}", replace(first, box=None)))
    if query.per_label:
        out.append(("one per label", replace(first, per_label=False)))
    return out
