"""The galleries of a deployment, kept in a small Milvus collection every process reads.

Web workers, the CLI and the reindex job are separate processes, possibly on
several hosts; they all reach Milvus, so the list lives there
(``<default alias>_galleries``: one row per gallery) rather than in a local
file. The default gallery (named after ``LOOKALIKE_COLLECTION``) exists without
a row, so a deployment made before galleries keeps working with no migration
step. Every name derives from the default alias, so two deployments (or two
test runs) sharing one Milvus server never see each other's galleries.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pymilvus import DataType, MilvusClient, MilvusException

from app.exceptions import BadRequest, UnknownGallery
from app.vectors.calls import milvus_call

REGISTRY_SUFFIX = "_galleries"  # the registry: <default alias>_galleries
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
TITLE_LENGTH = 200
MODEL_LENGTH = 1024
RECHECK_AFTER = 0.25  # seconds: a miss in a list older than this reads Milvus again
QUERY_LIMIT = 16384  # galleries per deployment, far beyond any real one


@dataclass(frozen=True)
class Gallery:
    """A gallery: its name in URLs, title, model, and the Milvus alias of its collections."""

    name: str
    title: str
    model: str  # what its next reindex encodes with
    alias: str
    created: str = ""
    default: bool = False
    # Per-gallery settings kept with it (JSON values), for features that need some.
    settings: Mapping[str, Any] = field(default_factory=dict, compare=False)


def check_name(name: str) -> str:
    """``name`` if it is a valid gallery name, else a BadRequest saying what is allowed."""
    if not NAME.fullmatch(name or ""):
        raise BadRequest(
            f"{name[:60]!r} is not a gallery name: use 1 to 40 lower-case letters, "
            "digits and hyphens, starting with a letter or digit."
        )
    return name


def alias_for(name: str, default_alias: str) -> str:
    """The Milvus alias of a non-default gallery: ``<default alias>__<name>``, ``-`` as ``_h``.

    Collections are named ``<alias>_<timestamp>``, and a gallery's generations are
    found by that prefix followed by a digit. Here the character after ``<alias>_``
    is never a digit for another gallery's alias (``_`` after the default's, ``h``
    after another's), nor for the registry (``g``), so no gallery can take another's
    collections for its own; and the mapping is one to one.
    """
    return f"{default_alias}__" + check_name(name).replace("-", "_h")


def registry_name(default_alias: str) -> str:
    return default_alias + REGISTRY_SUFFIX


def default_name(collection: str) -> str:
    """The default gallery's name, from ``LOOKALIKE_COLLECTION`` (``_`` read as ``-``)."""
    name = collection.lower().replace("_", "-")[:40]
    return name if NAME.fullmatch(name) else "default"


class GalleryRegistry:
    """The galleries, read through a short per-process cache like the alias check."""

    def __init__(
        self, client: MilvusClient, *, default: Gallery, timeout: float = 10.0, ttl: float = 2.0
    ) -> None:
        self.client = client
        self.default = replace(default, default=True)
        self.timeout = timeout
        self.ttl = ttl
        # For milvus_call: a registry Milvus Lite forgot to load is loaded again.
        self.name = self.alias = registry_name(self.default.alias)
        self.maintenance_timeout = max(timeout, 60.0)
        self._cached: list[Gallery] | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    # -- reading ----------------------------------------------------------------------

    def all(self) -> list[Gallery]:
        """Every gallery, the default first, then by name."""
        with self._lock:
            if self._cached is None or time.monotonic() - self._read_at >= self.ttl:
                self._cached = self._read()
                self._read_at = time.monotonic()
            return list(self._cached)

    def names(self) -> list[str]:
        return [gallery.name for gallery in self.all()]

    def get(self, name: str) -> Gallery:
        """The gallery called ``name``; UnknownGallery (404, with the known names) if none.

        A name missing from a cached list is looked up once more in Milvus (unless the
        list was just read): another process may have created it a moment ago.
        """
        for attempt in range(2):
            for gallery in self.all():
                if gallery.name == name:
                    return gallery
            if attempt == 0 and NAME.fullmatch(name or "") and self._age() > RECHECK_AFTER:
                self.invalidate()
        known = self.names()
        raise UnknownGallery(
            f"There is no gallery {name[:60]!r}. Known galleries: {', '.join(known)}.", known=known
        )

    def _age(self) -> float:
        return time.monotonic() - self._read_at

    def invalidate(self) -> None:
        with self._lock:
            self._cached = None

    @milvus_call("reading the galleries")
    def _read(self) -> list[Gallery]:
        rows = []
        if self.client.has_collection(self.name, timeout=self.timeout):
            rows = self.client.query(
                self.name,
                filter='name != ""',
                limit=QUERY_LIMIT,
                output_fields=["name", "title", "model", "created", "settings"],
                timeout=self.timeout,
                consistency_level="Strong",
            )
        stored = {row["name"]: row for row in rows}
        default = self.default
        if default.name in stored:  # only the title is kept: the model is LOOKALIKE_MODEL's
            default = replace(
                default,
                title=stored[default.name]["title"] or default.title,
                created=stored[default.name]["created"],
                settings=stored[default.name].get("settings") or {},
            )
        others = [
            Gallery(
                name=row["name"],
                title=row["title"],
                model=row["model"],
                alias=alias_for(row["name"], default.alias),
                created=row["created"],
                settings=row.get("settings") or {},
            )
            for name, row in sorted(stored.items())
            if name != default.name
        ]
        return [default, *others]

    # -- writing ----------------------------------------------------------------------

    def create(self, name: str, *, title: str = "", model: str) -> Gallery:
        """Register a new gallery; its collection is made on its first image."""
        check_name(name)
        if name in self._fresh_names():
            raise BadRequest(f"A gallery {name!r} exists already.")
        alias = alias_for(name, self.default.alias)
        if not model.strip():
            raise BadRequest("Say which model the gallery uses.")
        gallery = Gallery(
            name=name, title=_title(title, name), model=model.strip(), alias=alias, created=_now()
        )
        self._write(gallery)
        return gallery

    def retitle(self, name: str, title: str) -> Gallery:
        gallery = replace(self._fresh_get(name), title=_title(title, name))
        self._write(gallery)
        return gallery

    def set_model(self, name: str, model: str) -> Gallery:
        """The model a (non-default) gallery's next reindex uses; the default gallery's is
        LOOKALIKE_MODEL."""
        gallery = self._fresh_get(name)
        if gallery.default:
            raise BadRequest("The default gallery's model is LOOKALIKE_MODEL: set it there.")
        gallery = replace(gallery, model=model.strip())
        self._write(gallery)
        return gallery

    def update_settings(self, name: str, **changes: Any) -> Gallery:
        """Merge ``changes`` (JSON values) into a gallery's settings; None removes a key."""
        gallery = self._fresh_get(name)
        merged = {**gallery.settings, **changes}
        gallery = replace(gallery, settings={k: v for k, v in merged.items() if v is not None})
        self._write(gallery)
        return gallery

    @milvus_call("removing a gallery")
    def remove(self, name: str) -> None:
        """Forget a gallery (its collections are dropped by the caller, first)."""
        gallery = self._fresh_get(name)
        if gallery.default:
            raise BadRequest(
                f"{name!r} is the default gallery (LOOKALIKE_COLLECTION): it cannot be deleted."
            )
        self.client.delete(self.name, ids=[name], timeout=self.timeout)
        self.invalidate()

    def _fresh_names(self) -> list[str]:
        self.invalidate()
        return self.names()

    def _fresh_get(self, name: str) -> Gallery:
        self.invalidate()
        return self.get(name)

    @milvus_call("saving a gallery")
    def _write(self, gallery: Gallery) -> None:
        self._ensure()
        self.client.upsert(
            self.name,
            [
                {
                    "name": gallery.name,
                    "title": gallery.title[:TITLE_LENGTH],
                    "model": gallery.model[:MODEL_LENGTH],
                    "created": gallery.created,
                    "settings": dict(gallery.settings),
                    "vector": [0.0, 0.0],
                }
            ],
            timeout=self.timeout,
        )
        self.invalidate()

    def _ensure(self) -> None:
        if self.client.has_collection(self.name, timeout=self.timeout):
            return
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("name", DataType.VARCHAR, is_primary=True, max_length=40)
        schema.add_field("title", DataType.VARCHAR, max_length=TITLE_LENGTH * 4)
        schema.add_field("model", DataType.VARCHAR, max_length=MODEL_LENGTH * 4)
        schema.add_field("created", DataType.VARCHAR, max_length=40)
        schema.add_field("settings", DataType.JSON)  # room for per-gallery settings
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=2)  # Milvus requires one
        index = self.client.prepare_index_params()
        index.add_index(field_name="vector", index_type="FLAT", metric_type="L2")
        try:
            self.client.create_collection(
                self.name,
                schema=schema,
                index_params=index,
                consistency_level="Strong",
                timeout=60.0,
                description=json.dumps({"lookalike": "galleries"}),
            )
        except MilvusException:
            # Another process made it first: use theirs.
            if not self.client.has_collection(self.name, timeout=self.timeout):
                raise


def _title(title: str, name: str) -> str:
    title = " ".join((title or "").split())[:TITLE_LENGTH]
    return title or name.replace("-", " ").capitalize()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def row_of(gallery: Gallery) -> dict[str, Any]:
    """A gallery as JSON (CLI and API listings)."""
    return {
        "name": gallery.name,
        "title": gallery.title,
        "model": gallery.model,
        "alias": gallery.alias,
        "created": gallery.created,
        "default": gallery.default,
    }
