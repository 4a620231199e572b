"""``gallery add --ray`` on a Milvus server with an import folder: Parquet files
bulk-imported by the server (``do_bulk_insert``), searchable, never doubled.

Needs Ray and the Milvus 2.3.5 server of tests/servers.py; skipped without them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.ray_fixtures import many_photos
from tests.servers import milvus_server  # noqa: F401  (fixture)

COUNT = 60
pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::ResourceWarning"
)


@pytest.fixture
def server_app(make_app, milvus_server: str, tmp_path: Path):  # noqa: F811
    pytest.importorskip("pymilvus.bulk_writer", reason="pip install -r requirements-ray.txt")
    return make_app(MILVUS_URI=milvus_server, MILVUS_IMPORT_DIR=str(tmp_path / "imports"))


def _rows(app) -> list[dict]:  # type: ignore[no-untyped-def]
    with app.app_context():
        from app.extensions import snapshot

        snap = snapshot()
        return snap.vectors.client.query(
            snap.collection, filter='id != ""', limit=16384, output_fields=["id", "vector", "key"]
        )


def test_ray_add_on_a_server_bulk_imports_rows_that_are_searchable_and_not_doubled(
    server_app, local_ray, photos: dict[str, bytes], tmp_path: Path
) -> None:
    folder = many_photos(photos, tmp_path / "photos", COUNT)
    args = ["gallery", "add", str(folder), "--label-from-folder", "--ray"]
    first = server_app.test_cli_runner().invoke(args=args)
    assert first.exit_code == 0, first.output
    assert "BulkImportWriter" in first.output and f"Added {COUNT}," in first.output
    assert list((tmp_path / "imports").rglob("*.parquet")), "no Parquet file was imported"

    rows = _rows(server_app)
    assert len(rows) == COUNT and len({r["id"] for r in rows}) == COUNT
    with server_app.app_context():
        from app.extensions import snapshot

        snap = snapshot()
        probe = rows[7]
        hits = snap.vectors.search(np.asarray(probe["vector"], dtype=np.float32), 3)
    assert hits[0].id == probe["id"]

    again = server_app.test_cli_runner().invoke(args=args)
    assert again.exit_code == 0, again.output
    assert f"Added 0, skipped {COUNT} already" in again.output
    assert len(_rows(server_app)) == COUNT
