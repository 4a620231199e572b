"""Rows into the target collection: batched upserts, or a Milvus server's bulk import.

Upserts work everywhere (Milvus Lite included) and are idempotent, since rows are
keyed by content hash. Bulk import (Milvus 2.3+: ``do_bulk_insert``) writes Parquet
files with pymilvus' ``LocalBulkWriter`` into a folder the server reads
(``LOOKALIKE_MILVUS_IMPORT_DIR``, as the server sees it) and has the server load
them. It does not de-duplicate primary keys, so the caller hands each id once
(app/cluster/run.py drops repeats and ids already in the collection) and each file
is imported exactly once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from app.exceptions import VectorStoreUnavailable
from app.vectors.records import LABEL_LENGTH, Entry
from app.vectors.store import VectorStore

IMPORT_TIMEOUT = 3600.0  # seconds one import job may take before it is reported failed


class RowWriter(Protocol):
    def add(self, entries: Sequence[Entry]) -> None: ...
    def close(self) -> int: ...  # rows written


class UpsertWriter:
    """Batched upserts through the gallery's VectorStore."""

    def __init__(self, vectors: VectorStore, collection: str | None = None) -> None:
        self.vectors = vectors
        self.collection = collection
        self.rows = 0

    def add(self, entries: Sequence[Entry]) -> None:
        self.vectors.upsert(entries, self.collection)
        self.rows += len(entries)

    def close(self) -> int:
        return self.rows


class BulkImportWriter:
    """Parquet files into ``folder``, then one server import per file, polled to the end."""

    def __init__(
        self,
        vectors: VectorStore,
        collection: str,
        folder: Path,
        *,
        uri: str,
        token: str = "",
        segment_mb: int = 512,
    ) -> None:
        from pymilvus import Collection, connections
        from pymilvus.bulk_writer import BulkFileType, LocalBulkWriter

        self.vectors = vectors
        self.collection = collection
        self.using = f"lookalike-import-{uuid.uuid4().hex[:8]}"
        connections.connect(alias=self.using, uri=uri, token=token or None)
        schema = Collection(collection, using=self.using).schema
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder / uuid.uuid4().hex  # this job's files only
        self.writer = LocalBulkWriter(
            schema=schema,
            local_path=str(self.folder),
            segment_size=segment_mb * 1024 * 1024,
            file_type=BulkFileType.PARQUET,
        )
        self.rows = 0
        self.imported: set[str] = set()

    def add(self, entries: Sequence[Entry]) -> None:
        for e in entries:
            self.writer.append_row(
                {
                    "id": e.id,
                    "vector": np.asarray(e.vector, dtype=np.float32).tolist(),
                    "key": e.key,
                    "label": e.label[:LABEL_LENGTH],
                    "metadata": e.metadata or {},
                }
            )
        self.rows += len(entries)

    def close(self) -> int:
        """Import every file once, wait for each, then make the rows searchable."""
        from pymilvus import connections

        try:
            if self.rows:
                before = self._count()
                self.writer.commit()
                for files in self.writer.batch_files:
                    self._import([str(Path(f).resolve()) for f in files])
                self.vectors.client.load_collection(self.collection)
                self._wait_until_served(before + self.rows)
        finally:
            connections.disconnect(self.using)
        return self.rows

    def _count(self) -> int:
        rows = self.vectors.client.query(
            self.collection, filter="", output_fields=["count(*)"], consistency_level="Strong"
        )
        return int(rows[0]["count(*)"])

    def _wait_until_served(self, expected: int) -> None:
        """A loaded collection serves imported segments only once its query nodes
        have loaded them, shortly after the import job says it is done."""
        deadline = time.monotonic() + IMPORT_TIMEOUT
        while self._count() < expected:
            if time.monotonic() > deadline:
                raise VectorStoreUnavailable("Milvus imported the rows but does not serve them.")
            time.sleep(0.5)  # polling the server: there is nothing to wait on

    def _import(self, files: list[str]) -> None:
        from pymilvus import BulkInsertState, utility

        name = ",".join(files)
        if name in self.imported:  # never twice: the server would double the rows
            return
        self.imported.add(name)
        task = utility.do_bulk_insert(self.collection, files=files, using=self.using)
        deadline = time.monotonic() + IMPORT_TIMEOUT
        delay = 0.2
        while True:
            state = utility.get_bulk_insert_state(task, using=self.using)
            if state.state == BulkInsertState.ImportCompleted:
                return
            if state.state in (
                BulkInsertState.ImportFailed,
                BulkInsertState.ImportFailedAndCleaned,
            ):
                raise VectorStoreUnavailable(
                    f"Milvus could not import {name}: {state.failed_reason}"
                )
            if time.monotonic() > deadline:
                raise VectorStoreUnavailable(f"Milvus did not finish importing {name} in time.")
            time.sleep(delay)  # polling the server's job state: there is nothing to wait on
            delay = min(delay * 2, 2.0)
