"""Milvus filter expressions built from structured values, never from pasted text.

Neither backend here takes expression templates (``filter_params``): Milvus Lite
3.2 and the Milvus 2.3 server both reject ``{name}`` placeholders. So every user
string goes through :func:`string_literal`, the one place that quotes; JSON keys
are checked against ``KEY_PATTERN`` before they become ``metadata["key"]``, and
numbers are written by Python from real floats. Milvus Lite does not accept a
JSON path on the left of ``in``, so "any of" is written as ``==`` joined by ``or``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

KEY_PATTERN = re.compile(r"[A-Za-z0-9_]{1,64}")
RANGE_OPERATORS = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
# The escapes both Milvus grammars read in a double-quoted string.
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


@dataclass(frozen=True)
class MetadataCondition:
    """One metadata key: equal to one of ``values``, and/or within ``ranges``."""

    key: str
    values: tuple[str | float, ...] = ()
    ranges: tuple[tuple[str, float], ...] = ()  # (operator name, bound), e.g. ("lt", 20)


@dataclass(frozen=True)
class Filters:
    """What a search is restricted to; empty means the whole gallery."""

    labels: tuple[str, ...] = ()
    metadata: tuple[MetadataCondition, ...] = ()
    exclude_id: str = ""  # a search by key leaves its own image out

    def expression(self) -> str:
        """The Milvus boolean expression, or "" for no filter."""
        parts = []
        if self.labels:
            parts.append(f"label in [{', '.join(string_literal(v) for v in self.labels)}]")
        parts.extend(_condition(c) for c in self.metadata)
        if self.exclude_id:
            parts.append(f"id != {string_literal(self.exclude_id)}")
        return " and ".join(f"({p})" for p in parts)

    def checkable_on_hits(self) -> bool:
        """True when :meth:`admits` can decide on a hit's id and label alone: no
        metadata condition (JSON comparisons stay Milvus' to judge)."""
        return not self.metadata

    def admits(self, id_: str, label: str) -> bool:
        """Whether a row with this id and label passes the label and id conditions:
        exact string equality, as Milvus' ``in`` and ``!=`` compare."""
        return (not self.labels or label in self.labels) and id_ != self.exclude_id


def string_literal(text: str) -> str:
    """``text`` as a double-quoted Milvus string literal that reads back as ``text``."""
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in text) + '"'


def _condition(condition: MetadataCondition) -> str:
    if not KEY_PATTERN.fullmatch(condition.key):
        raise ValueError(f"metadata key {condition.key!r} is not [A-Za-z0-9_]{{1,64}}")
    path = f'metadata["{condition.key}"]'
    parts = []
    if condition.values:
        parts.append(" or ".join(f"{path} == {_value(v)}" for v in condition.values))
    for name, bound in condition.ranges:
        parts.append(f"{path} {RANGE_OPERATORS[name]} {_number(bound)}")
    return " and ".join(f"({p})" for p in parts)


def _value(value: str | float) -> str:
    return string_literal(value) if isinstance(value, str) else _number(value)


def _number(value: float) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    return repr(int(value)) if isinstance(value, int) else repr(float(value))
