"""``index migrate``: a gallery copied from Milvus Lite to a real Milvus standalone server.

Both deployments are real and started by the suite (the conftest's Lite server,
``tests.servers.milvus_server``). The copy is interrupted once through the
migration's ``after_batch`` hook and resumed; the source changes in between, as
it does while the app keeps serving.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.vectors.connect import open_client
from app.vectors.migrate import PROGRESS_PROPERTY, MigrationResult, migrate
from app.vectors.records import Entry, IndexParams, ModelStamp
from app.vectors.store import VectorStore
from tests.servers import milvus_server  # noqa: F401  (fixture)
from tests.test_search import add_gallery, upload

pytestmark = pytest.mark.slow

STAMP = ModelStamp("tiny", "f00d", 32)
ROWS = 3000
BATCH = 500
# Searches that visit every row: two HNSW graphs (Lite's and the server's) may each
# miss a different near-tie at the default ef, and the test compares their answers.
SEARCH_ALL = IndexParams(ef=2 * ROWS)


class Interrupted(Exception):
    """Stands for Ctrl+C or a lost connection in the middle of the copy."""


def clustered(n: int, seed: int) -> np.ndarray:
    """Vectors around 50 centres, as real embeddings cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, STAMP.dim))
    x = centres[rng.integers(0, 50, size=n)] + 0.5 * rng.normal(size=(n, STAMP.dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def gallery(n: int, *, seed: int = 0, start: int = 0) -> list[Entry]:
    vectors = clustered(n, seed)
    return [Entry(f"{start + i:064x}", v, f"{start + i:064x}.jpg", f"label{i % 7}",
                  {"n": start + i, "tags": ["a", str(i % 3)]}) for i, v in enumerate(vectors)]


@pytest.fixture
def source(lite_server: str, collection_name: str) -> VectorStore:
    store = VectorStore(open_client(lite_server, timeout=30)[0], collection_name,
                        params=SEARCH_ALL, lite=True, timeout=30)
    collection = store.ensure(STAMP)
    for start in range(0, ROWS, 1000):
        store.upsert(gallery(ROWS)[start : start + 1000])
    store.mark_served(collection)
    return store


@pytest.fixture
def target(milvus_server: str, collection_name: str) -> VectorStore:  # noqa: F811
    return VectorStore(open_client(milvus_server, timeout=30)[0], collection_name,
                       params=SEARCH_ALL, timeout=30)


def interrupt_after(rows: int):  # type: ignore[no-untyped-def]
    def hook(done: int) -> None:
        if done >= rows:
            raise Interrupted

    return hook


def top_ids(store: VectorStore, queries: np.ndarray) -> list[list[str]]:
    return [[hit.id for hit in store.search(q, 10)] for q in queries]


def test_an_interrupted_migration_resumes_and_the_copy_answers_like_the_source(
    source: VectorStore, target: VectorStore
) -> None:
    queries = clustered(25, seed=42)

    with pytest.raises(Interrupted):
        migrate(source, target, batch_size=BATCH, after_batch=interrupt_after(2 * BATCH))
    assert target.resolve() is None  # the alias moves only at the end
    name = target.generations()[0]
    state = json.loads(target.client.describe_collection(name)["properties"][PROGRESS_PROPERTY])
    assert state == {"through": f"{2 * BATCH - 1:064x}", "done": False}

    # The app keeps serving from the source meanwhile: an image deleted from the part
    # already copied, one added there and one after it.
    source.delete([f"{5:064x}"])
    source.upsert([gallery(1, seed=9, start=ROWS)[0],
                   Entry(f"{5:063x}g", clustered(1, seed=10)[0], "new.jpg", "new", {})])

    before = top_ids(source, queries)

    result = migrate(source, target, batch_size=BATCH)

    assert isinstance(result, MigrationResult)
    assert result.resumed and result.rows == ROWS + 1 == source.count()
    assert result.copied == ROWS + 1 - 2 * BATCH  # the rest, plus the row added after it
    assert result.reconciled == 2  # the deleted one, the one added behind the copy
    assert result.sampled == 200
    assert target.resolve() == result.target == name
    assert target.count() == ROWS + 1
    assert target.stamp_of(name) == STAMP
    assert target.served_since(name) == source.served_since(source.resolve() or "") != ""
    assert source.resolve() is not None and source.count() == ROWS + 1  # source untouched
    assert top_ids(target, queries) == before
    row = target.get(f"{ROWS - 1:064x}", with_vector=True)
    assert row.label == f"label{(ROWS - 1) % 7}" and row.metadata["tags"] == ["a", "2"]
    assert np.array_equal(row.vector, gallery(ROWS)[-1].vector)


def test_a_second_migration_refuses_to_overwrite_another_gallery(
    source: VectorStore, target: VectorStore
) -> None:
    from app.exceptions import CollectionMismatch

    other = target.create_collection(STAMP, name=f"{target.alias}_19990101T000000000000")
    target.switch_to(other)
    with pytest.raises(CollectionMismatch, match="already serves"):
        migrate(source, target, batch_size=BATCH)
    assert target.count(other) == 0


def test_the_cli_migrates_the_app_gallery_and_the_moved_app_answers_the_same(
    make_app, runner, gallery_dir, photos, milvus_server: str  # noqa: F811
) -> None:
    add_gallery(runner, gallery_dir)
    client = runner.app.test_client()
    before = {name: [r["key"] for r in upload(client, data, k=6).get_json()["results"]]
              for name, data in photos.items()}

    result = runner.invoke(args=["index", "migrate", "--to", milvus_server])

    assert result.exit_code == 0, result.output
    assert "Copied 6 rows" in result.output
    assert f"export LOOKALIKE_MILVUS_URI={milvus_server}" in result.output
    moved = make_app(MILVUS_URI=milvus_server).test_client()
    after = {name: [r["key"] for r in upload(moved, data, k=6).get_json()["results"]]
             for name, data in photos.items()}
    assert after == before


def test_a_gallery_moves_between_two_standalone_servers(
    tmp_path, collection_name: str, target: VectorStore  # type: ignore[no-untyped-def]
) -> None:
    """The local server of the embedded default to another server (a cluster, say)."""
    from app.vectors import standalone

    executable = standalone.find_executable()
    if executable is None or not standalone.can_isolate():
        pytest.skip("no local Milvus server here (make install; user namespaces)")
    server = standalone.ensure_server(tmp_path / "milvus", executable)
    try:
        source = VectorStore(open_client(server.uri, timeout=30)[0],
                             collection_name, timeout=30)
        source.ensure(STAMP)
        source.upsert(gallery(1500, seed=5))
        source.wait_for_index(timeout=300)
        queries = clustered(10, seed=43)
        before = top_ids(source, queries)

        result = migrate(source, target, batch_size=BATCH)

        assert (result.rows, result.copied, result.resumed) == (1500, 1500, False)
        assert target.count() == 1500 and target.stamp_of(result.target) == STAMP
        assert top_ids(target, queries) == before
    finally:
        standalone.stop_server(tmp_path / "milvus")
