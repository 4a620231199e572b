"""The collections behind an alias: create, stamp, check, switch, drop, index state.

The serving name (``LOOKALIKE_COLLECTION``, say ``gallery``) is an alias that
points to a physical collection (``gallery_20261120T120000``). A reindex fills a
new physical collection and moves the alias in one step, so searches never see
a half-built one. Each collection records which model made its vectors, so
vectors from different models are never compared.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pymilvus import DataType, MilvusClient, MilvusException
from pymilvus.client.types import LoadState

from app.exceptions import CollectionMismatch, NotFound
from app.vectors.calls import is_missing, milvus_call
from app.vectors.records import (
    ID_LENGTH,
    KEY_LENGTH,
    LABEL_LENGTH,
    CollectionInfo,
    IndexParams,
    ModelStamp,
)

STAMP_PROPERTY = "lookalike.stamp"
# Set on a collection once it has served searches: a reindex may roll back to it,
# while a generation without it is a half-built leftover that can be dropped.
SERVED_PROPERTY = "lookalike.served"
# Milvus builds no index on a sealed segment smaller than this
# (indexCoord.segment.minSegmentNumRowsToEnableIndex): it is searched exactly.
MIN_INDEXED_SEGMENT_ROWS = 1024
FLUSH_ATTEMPTS = 3  # Milvus Lite's transient flush failures (Collections._flush)
FLUSH_BACKOFF_S = 1.0

log = logging.getLogger(__name__)


class Collections:
    """Collection lifecycle of a VectorStore (app/vectors/store.py holds the rows)."""

    client: MilvusClient
    alias: str
    params: IndexParams
    lite: bool
    timeout: float
    maintenance_timeout: float

    def count(self, collection: str | None = None) -> int:  # pragma: no cover - VectorStore's
        raise NotImplementedError

    # -- collections and aliases -------------------------------------------------

    @milvus_call("opening the collection")
    def ensure(self, stamp: ModelStamp) -> str:
        """Make sure the serving alias exists and was built by ``stamp``'s model.

        Creates ``<alias>_<timestamp>`` and the alias on first use. Returns the
        physical collection's name. Raises CollectionMismatch otherwise.
        """
        target = self.resolve()
        if target is None:
            created = self.create_collection(stamp)
            try:
                self.client.create_alias(created, self.alias, timeout=self.maintenance_timeout)
                return created
            except MilvusException:
                # Another process (a second gunicorn worker, the CLI) made the alias
                # first: serve its collection and drop ours.
                target = self.resolve()
                if target is None:
                    raise
                self.client.drop_collection(created, timeout=self.maintenance_timeout)
        self.check(stamp, target)
        return target

    def resolve(self) -> str | None:
        """The physical collection the alias points to (or a plain collection of that name)."""
        if self.alias in self.client.list_aliases(timeout=self.timeout).get("aliases", []):
            return self.client.describe_alias(self.alias, timeout=self.timeout)["collection_name"]
        if self.client.has_collection(self.alias, timeout=self.timeout):
            return self.alias
        return None

    def check(self, stamp: ModelStamp, collection: str | None = None) -> None:
        """Refuse a collection made by another model: its vectors are not comparable."""
        collection = collection or self.resolve() or self.alias
        found = self.stamp_of(collection)
        if found is None:
            dim = self._dim_of(collection)
            if dim != stamp.dim:
                raise CollectionMismatch(
                    f"Collection {collection!r} holds {dim}-d vectors but the model "
                    f"{stamp.name!r} makes {stamp.dim}-d ones. Reindex the gallery or set "
                    "LOOKALIKE_COLLECTION to a new name."
                )
            return
        if found.dim != stamp.dim or found.fingerprint != stamp.fingerprint:
            raise CollectionMismatch(
                f"Collection {collection!r} was built with the model {found.name!r} "
                f"({found.dim}-d, weights {found.fingerprint}), but the app loaded "
                f"{stamp.name!r} ({stamp.dim}-d, weights {stamp.fingerprint}). Reindex the "
                "gallery with the new model (admin page or `flask --app wsgi index rebuild`), "
                "or set LOOKALIKE_MODEL back to the model that built it."
            )

    @milvus_call("creating a collection")
    def create_collection(self, stamp: ModelStamp, name: str | None = None) -> str:
        """A new, empty, indexed and loaded physical collection for ``stamp``'s vectors."""
        name = name or f"{self.alias}_{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=ID_LENGTH)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=stamp.dim)
        schema.add_field("key", DataType.VARCHAR, max_length=KEY_LENGTH)
        schema.add_field("label", DataType.VARCHAR, max_length=LABEL_LENGTH)
        schema.add_field("metadata", DataType.JSON)
        index = self.client.prepare_index_params()
        index.add_index(
            field_name="vector",
            index_type="HNSW",
            metric_type="COSINE",
            params={"M": self.params.m, "efConstruction": self.params.ef_construction},
        )
        description = json.dumps({
            "lookalike": 1,
            "model": stamp.name,
            "fingerprint": stamp.fingerprint,
            "dim": stamp.dim,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        })
        self.client.create_collection(
            name, schema=schema, index_params=index, description=description,
            properties={STAMP_PROPERTY: description}, consistency_level="Strong",
            timeout=self.maintenance_timeout,
        )
        return name

    @milvus_call("switching the serving alias")
    def switch_to(self, collection: str) -> str | None:
        """Point the serving alias at ``collection`` in one step; returns the previous target.

        Searches go to the old collection until this call and to the new one
        after it: there is no moment without a collection behind the alias.
        """
        previous = self.resolve()
        if previous == self.alias:
            raise CollectionMismatch(
                f"{self.alias!r} is a plain collection, not an alias, so it cannot be "
                "switched. Rename it or set LOOKALIKE_COLLECTION to a new name."
            )
        if previous is None:
            self.client.create_alias(collection, self.alias, timeout=self.maintenance_timeout)
        else:
            self.client.alter_alias(collection, self.alias, timeout=self.maintenance_timeout)
        return previous

    @milvus_call("listing collections")
    def generations(self) -> list[str]:
        """The physical collections of this alias, oldest first (names sort by time)."""
        prefix = f"{self.alias}_"
        names = self.client.list_collections(timeout=self.timeout)
        return sorted(n for n in names if n.startswith(prefix) and n[len(prefix):][:1].isdigit())

    @milvus_call("dropping a collection")
    def drop(self, collection: str) -> None:
        if collection == self.resolve():
            raise CollectionMismatch(f"{collection!r} is serving searches; switch away first.")
        self.client.drop_collection(collection, timeout=self.maintenance_timeout)

    @milvus_call("marking a collection as served")
    def mark_served(self, collection: str) -> None:
        """Record that ``collection`` has served searches (so it is a rollback target)."""
        self.client.alter_collection_properties(
            collection, properties={SERVED_PROPERTY: _now()}, timeout=self.maintenance_timeout
        )

    @milvus_call("describing a collection")
    def served_since(self, collection: str) -> str:
        """When ``collection`` was marked as served, or "" if it never was."""
        described = self.client.describe_collection(collection, timeout=self.timeout)
        return str((described.get("properties") or {}).get(SERVED_PROPERTY, ""))

    def stamp_of(self, collection: str) -> ModelStamp | None:
        meta = self._description(collection)
        if not meta.get("lookalike"):
            return None
        return ModelStamp(meta["model"], meta["fingerprint"], int(meta["dim"]))

    def _description(self, collection: str) -> dict[str, Any]:
        """The stamp JSON: a collection property (Milvus Lite keeps no description) or
        the description (older servers that drop unknown properties)."""
        described = self.client.describe_collection(collection, timeout=self.timeout)
        text = (described.get("properties") or {}).get(STAMP_PROPERTY) \
            or described.get("description", "")
        try:
            meta = json.loads(text) if text else {}
        except json.JSONDecodeError:
            return {}
        return meta if isinstance(meta, dict) else {}

    def _dim_of(self, collection: str) -> int:
        fields = self.client.describe_collection(collection, timeout=self.timeout)["fields"]
        vector = next(f for f in fields if f["type"] == DataType.FLOAT_VECTOR)
        return int(vector["params"]["dim"])

    # -- rows -----------------------------------------------------------------------

    def _flush(self, name: str, timeout: float) -> None:
        """Persist pending rows of ``name``, tried again where Milvus Lite fails transiently.

        Flushing is maintenance, not a request: a server may take longer than the
        request timeout, so it gets the wait's. Lite's
        flush once failed reading an index file its own background build was still
        writing (faiss "read error ... Resource temporarily unavailable", in CI, after
        a job killed while indexing); a flush is idempotent, so it is tried again.
        """
        for attempt in range(FLUSH_ATTEMPTS):
            try:
                self.client.flush(name, timeout=timeout)
                return
            except MilvusException as exc:
                if not self.lite or attempt + 1 == FLUSH_ATTEMPTS or is_missing(exc):
                    raise
                log.warning("flushing %s failed (%s); trying again", name, exc.message)
                time.sleep(FLUSH_BACKOFF_S * (attempt + 1))  # let Lite's build finish the file

    @milvus_call("flushing")
    def wait_for_index(
        self,
        collection: str | None = None,
        *,
        serving: bool = True,
        timeout: float = 600.0,
        progress: Callable[[int, int], None] | None = None,
    ) -> str:
        """Persist pending rows and wait until searches run on the HNSW index over them.

        A Milvus server reports indexed/total rows, which we poll; once built, its
        query nodes still load the index segment by segment, searching the rest
        with a coarse interim index meanwhile, so we also wait until every loaded
        segment large enough to be indexed has its index. Milvus Lite
        builds in a background thread it does not report; for a collection that
        is not serving yet we force a synchronous build (release + load), and for
        the serving one we say that it is still building rather than block.
        """
        name = collection or self.alias
        self._flush(name, timeout)
        if self.lite:
            if serving:
                return "background (Milvus Lite)"
            self.client.release_collection(name, timeout=self.maintenance_timeout)
            self.client.load_collection(name, timeout=timeout)
            return "finished"
        deadline = time.monotonic() + timeout
        while True:
            state = self.client.describe_index(name, "vector", timeout=self.timeout)
            total = int(state.get("total_rows", 0))
            done = int(state.get("indexed_rows", 0))
            if progress:
                progress(done, total)
            built = state.get("state") == "Finished" and not int(state.get("pending_index_rows", 0))
            if built and self._index_loaded(name, total):
                return "finished"
            if time.monotonic() > deadline:
                return f"building ({done}/{total} rows)"
            time.sleep(0.5)

    def _index_loaded(self, name: str, rows: int) -> bool:
        """True once the query nodes search all ``rows`` of ``name`` through sealed segments
        with their index (a segment under Milvus' indexing minimum never gets one and is
        searched exactly), or when ``name`` is not loaded at all."""
        if rows < MIN_INDEXED_SEGMENT_ROWS:
            return True  # no segment that small gets an index: nothing to wait for
        if self.client.get_load_state(name, timeout=self.timeout)["state"] != LoadState.Loaded:
            return True
        segments = self.client.list_loaded_segments(name, timeout=self.timeout)
        return sum(s.num_rows for s in segments
                   if s.index_name or s.num_rows < MIN_INDEXED_SEGMENT_ROWS) >= rows

    @milvus_call("describing the collection")
    def info(self) -> CollectionInfo:
        collection = self.resolve()
        if collection is None:
            raise NotFound(f"There is no collection {self.alias!r} yet: add images first.")
        index = self.client.describe_index(collection, "vector", timeout=self.timeout)
        meta = self._description(collection)
        if self.lite:
            state = "background (Milvus Lite)"
        elif index.get("state") == "Finished" and not int(index.get("pending_index_rows", 0)):
            state = "finished"
        else:
            state = f"building ({index.get('indexed_rows', 0)}/{index.get('total_rows', 0)} rows)"
        return CollectionInfo(
            alias=self.alias,
            collection=collection,
            stamp=self.stamp_of(collection),
            created=meta.get("created", ""),
            rows=self.count(collection),
            index_type=index.get("index_type", ""),
            metric=index.get("metric_type", ""),
            index_params={k: index[k] for k in ("M", "efConstruction") if k in index},
            index_state=state,
        )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
