"""Copy a gallery's collection to another Milvus deployment, without re-encoding.

``flask --app wsgi index migrate --to URI`` moves the serving collection (its
vectors, labels, metadata, model stamp and collection properties) from the
configured Milvus to another one: Milvus Lite to a local standalone, a
standalone to a cluster. The source is only read, so the app keeps serving
from it meanwhile.

- Streaming: rows are read in pages by primary key (keyset paging, cheap at any
  depth) and upserted into the target in batches.
- Resumable: after every batch the last copied id is recorded in the target
  collection's properties (PROGRESS_PROPERTY); a second run starts after it,
  and since rows are upserted by id a batch copied twice is harmless.
- Catching up: rows the app added or deleted on the source while the copy ran
  are reconciled by id before verifying.
- Verified: row counts, then a random sample of rows (vector, key, label,
  metadata) compared on both sides. Only then does the target's alias move.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pymilvus import DataType

from app.exceptions import CollectionMismatch, LookalikeError, NotFound
from app.vectors.calls import milvus_call
from app.vectors.records import OUTPUT_FIELDS, ModelStamp
from app.vectors.store import VectorStore

PROGRESS_PROPERTY = "lookalike.migration"
ROW_FIELDS = ["id", "vector", *OUTPUT_FIELDS]


class MigrationFailed(LookalikeError):
    status = 500
    title = "Migration failed"


@dataclass(frozen=True)
class Progress:
    """Where a copy stands: rows done of (about) ``total``; ``phase`` names the step."""

    phase: str
    done: int
    total: int


@dataclass(frozen=True)
class MigrationResult:
    source: str  # the source's physical collection
    target: str  # the target's physical collection
    alias: str  # the serving alias on the target, now pointing at ``target``
    rows: int
    copied: int  # rows written by this run (a resumed run writes fewer)
    resumed: bool
    reconciled: int  # rows added or removed to catch up with the source
    sampled: int  # rows compared vector by vector


def target_name(source_alias: str, source_collection: str, target_alias: str) -> str:
    """The target's physical collection: the source's generation under the target's alias.

    Deterministic, so that an interrupted run finds its collection again.
    """
    prefix = f"{source_alias}_"
    if source_collection.startswith(prefix):
        return target_alias + source_collection[len(source_alias):]
    return f"{target_alias}_migrated"


def migrate(
    source: VectorStore,
    target: VectorStore,
    *,
    batch_size: int = 1000,
    sample: int = 200,
    on_progress: Callable[[Progress], None] | None = None,
    after_batch: Callable[[int], None] | None = None,
) -> MigrationResult:
    """Copy ``source``'s serving collection to ``target`` and point ``target.alias`` at it.

    ``after_batch(rows_done)`` runs after each batch is recorded: tests interrupt there.
    """
    report = on_progress or (lambda _progress: None)
    collection = source.resolve()
    if collection is None:
        raise NotFound(f"There is no collection {source.alias!r} to migrate.")
    name = target_name(source.alias, collection, target.alias)
    _refuse_other_gallery(target, name)
    total = _count(source, collection)
    through = _prepare(source, collection, target, name)
    copied = 0
    report(Progress("copying", 0, total))
    done = _count_through(source, collection, through) if through else 0
    for batch in _pages(source, collection, after=through, size=batch_size):
        target.client.upsert(name, batch, timeout=target.maintenance_timeout)
        copied += len(batch)
        done += len(batch)
        _record(target, name, through=batch[-1]["id"], done=False)
        report(Progress("copying", done, total))
        if after_batch is not None:
            after_batch(done)
    report(Progress("catching up", done, total))
    reconciled = _reconcile(source, collection, target, name, batch_size)
    report(Progress("building the index", done, total))
    target.wait_for_index(name, serving=False, timeout=3600)
    rows = _count(source, collection)
    sampled = _verify(source, collection, target, name, rows, sample)
    target.switch_to(name)
    _record(target, name, through="", done=True)
    report(Progress("done", rows, rows))
    return MigrationResult(collection, name, target.alias, rows, copied, bool(through),
                           reconciled, sampled)


def _refuse_other_gallery(target: VectorStore, name: str) -> None:
    serving = target.resolve()
    if serving is not None and serving != name:
        raise CollectionMismatch(
            f"The target already serves {target.alias!r} from {serving!r}. Choose another "
            "name with --collection, or drop that collection first."
        )


@milvus_call("preparing the target collection")
def _prepare(source: VectorStore, collection: str, target: VectorStore, name: str) -> str:
    """Create the target collection (or find it from an earlier run); returns the id the
    copy stopped after, "" to start from the beginning."""
    if target.client.has_collection(name, timeout=target.timeout):
        state = _progress(target, name)
        return str(state.get("through", "")) if not state.get("done") else ""
    stamp = source.stamp_of(collection) or ModelStamp("(unknown)", "", _dim(source, collection))
    target.create_collection(stamp, name=name)
    properties = dict(_properties(source, collection))
    properties[PROGRESS_PROPERTY] = json.dumps({"through": "", "done": False})
    target.client.alter_collection_properties(name, properties=properties,
                                              timeout=target.maintenance_timeout)
    return ""


def _properties(store: VectorStore, collection: str) -> dict[str, str]:
    described = store.client.describe_collection(collection, timeout=store.timeout)
    found = described.get("properties") or {}
    return {k: str(v) for k, v in found.items() if k.startswith("lookalike.")
            and k != PROGRESS_PROPERTY}


def _dim(store: VectorStore, collection: str) -> int:
    fields = store.client.describe_collection(collection, timeout=store.timeout)["fields"]
    return int(next(f for f in fields if f["type"] == DataType.FLOAT_VECTOR)["params"]["dim"])


def _progress(target: VectorStore, name: str) -> dict[str, Any]:
    text = _properties_raw(target, name).get(PROGRESS_PROPERTY, "")
    try:
        state = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return state if isinstance(state, dict) else {}


def _properties_raw(store: VectorStore, name: str) -> dict[str, Any]:
    return store.client.describe_collection(name, timeout=store.timeout).get("properties") or {}


@milvus_call("recording the migration's progress")
def _record(target: VectorStore, name: str, *, through: str, done: bool) -> None:
    state = {"through": through, "done": done}
    if done:
        state["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    target.client.alter_collection_properties(
        name, properties={PROGRESS_PROPERTY: json.dumps(state)},
        timeout=target.maintenance_timeout)


def _pages(store: VectorStore, collection: str, *, after: str, size: int,
           fields: list[str] = ROW_FIELDS) -> Iterator[list[dict[str, Any]]]:
    """Rows with ids after ``after``, in batches, in id order.

    A query iterator, not ``query(filter="id > last", limit=n)``: Milvus Lite
    answers a limited query with the first rows in insertion order, not the
    smallest ids, so keyset paging over plain queries skips rows there.
    """
    expr = f"id > {json.dumps(after)}" if after else ""
    iterator = milvus_call("reading rows to copy")(store.client.query_iterator)(
        collection, batch_size=size, filter=expr, output_fields=fields,
        timeout=store.maintenance_timeout)
    try:
        while batch := milvus_call("reading rows to copy")(iterator.next)():
            yield [_plain(row) for row in batch]
    finally:
        iterator.close()


def _plain(row: Any) -> dict[str, Any]:
    """A plain dict (pymilvus rows are views) with the types an insert takes."""
    out = dict(row)
    if "vector" in out:
        out["vector"] = np.asarray(out["vector"], dtype=np.float32).tolist()
    if "key" in out:
        out["metadata"] = out.get("metadata") or {}
        out["label"] = out.get("label") or ""
    return out


@milvus_call("counting rows")
def _count(store: VectorStore, collection: str, expr: str = "") -> int:
    """Rows, read "Strong": this store's own reads may lag behind writes ("Bounded")."""
    rows = store.client.query(collection, filter=expr, output_fields=["count(*)"],
                              consistency_level="Strong", timeout=store.maintenance_timeout)
    return int(rows[0]["count(*)"])


def _count_through(store: VectorStore, collection: str, through: str) -> int:
    return _count(store, collection, f"id <= {json.dumps(through)}")


def _ids(store: VectorStore, collection: str, size: int) -> set[str]:
    pages = _pages(store, collection, after="", size=max(size, 1000), fields=["id"])
    return {str(row["id"]) for page in pages for row in page}


@milvus_call("catching up with the source")
def _reconcile(source: VectorStore, collection: str, target: VectorStore, name: str,
               size: int) -> int:
    """Copy rows added to the source during the copy and drop those deleted from it."""
    target.client.flush(name, timeout=target.maintenance_timeout)
    wanted, have = _ids(source, collection, size), _ids(target, name, size)
    missing, extra = sorted(wanted - have), sorted(have - wanted)
    for start in range(0, len(missing), size):
        ids = missing[start : start + size]
        rows = source.client.query(collection, filter=f"id in {json.dumps(ids)}",
                                   output_fields=ROW_FIELDS, timeout=source.maintenance_timeout)
        batch = [_plain(row) for row in rows]
        if batch:
            target.client.upsert(name, batch, timeout=target.maintenance_timeout)
    for start in range(0, len(extra), size):
        target.client.delete(name, ids=extra[start : start + size],
                             timeout=target.maintenance_timeout)
    return len(missing) + len(extra)


@milvus_call("verifying the copy")
def _verify(source: VectorStore, collection: str, target: VectorStore, name: str,
            rows: int, sample: int) -> int:
    """Row counts equal, and a random sample of rows equal field by field."""
    copied = _count(target, name)
    if copied != rows:
        raise MigrationFailed(
            f"The copy holds {copied} rows but the source {rows}. Run the same command "
            "again: it resumes and catches up."
        )
    ids = random.sample(sorted(_ids(source, collection, 1000)), min(sample, rows))
    if not ids:
        return 0
    want = _by_id(source, collection, ids)
    got = _by_id(target, name, ids)
    for id_, row in want.items():
        other = got.get(id_)
        same = other is not None and all(row[k] == other[k] for k in OUTPUT_FIELDS) \
            and np.array_equal(np.asarray(row["vector"], np.float32),
                               np.asarray(other["vector"], np.float32))
        if not same:
            raise MigrationFailed(
                f"Row {id_} differs between the source and the copy. Run the same command "
                "again; if it fails again, drop the target collection and start over."
            )
    return len(ids)


def _by_id(store: VectorStore, collection: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = store.client.query(collection, filter=f"id in {json.dumps(ids)}",
                              output_fields=ROW_FIELDS, consistency_level="Strong",
                              timeout=store.maintenance_timeout)
    return {str(row["id"]): _plain(row) for row in rows}
