"""The vector store against a real Milvus Lite server."""

from __future__ import annotations

import numpy as np
import pytest

from app.exceptions import CollectionMismatch, NotFound, VectorStoreUnavailable
from app.vectors.connect import open_client
from app.vectors.filters import Filters, MetadataCondition
from app.vectors.records import Entry, ModelStamp
from app.vectors.store import COUNT_SECONDS, VectorStore
from tests.helpers import wait_until

STAMP = ModelStamp("tiny", "f00d", 8)


@pytest.fixture
def store(lite_server: str, collection_name: str) -> VectorStore:
    client = open_client(lite_server, timeout=10)[0]
    store = VectorStore(client, collection_name, lite=True)
    store.ensure(STAMP)
    return store


def unit(seed: int, dim: int = 8) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def entries(n: int) -> list[Entry]:
    return [Entry(f"{i:064x}", unit(i), f"{i:064x}.jpg", f"label{i % 2}", {"n": i})
            for i in range(n)]


def test_ensure_creates_a_collection_behind_the_alias(store: VectorStore) -> None:
    target = store.resolve()
    assert target is not None and target.startswith(store.alias + "_")
    assert store.stamp_of(target) == STAMP
    assert store.count() == 0


def test_search_ranks_by_cosine_similarity(store: VectorStore) -> None:
    store.upsert(entries(20))
    hits = store.search(unit(7), 5)
    assert hits[0].id == f"{7:064x}" and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].label == "label1" and hits[0].metadata == {"n": 7}


def test_upsert_is_idempotent(store: VectorStore) -> None:
    store.upsert(entries(5))
    store.upsert(entries(5))
    assert store.count() == 5


def test_existing_get_delete_and_iterate(store: VectorStore) -> None:
    store.upsert(entries(6))
    ids = [e.id for e in entries(6)]
    assert store.existing(ids[:2] + ["f" * 64]) == set(ids[:2])
    entry = store.get(ids[3], with_vector=True)
    assert np.allclose(entry.vector, unit(3), atol=1e-6)
    store.delete(ids[:2])
    assert store.count() == 4
    assert sorted(e.id for e in store.iterate(batch_size=3)) == ids[2:]
    with pytest.raises(NotFound):
        store.get(ids[0])


def test_a_collection_of_another_dimension_is_refused(store: VectorStore) -> None:
    with pytest.raises(CollectionMismatch, match="8-d"):
        store.ensure(ModelStamp("bigger", "f00d", 16))


def test_a_collection_of_other_weights_is_refused(store: VectorStore) -> None:
    with pytest.raises(CollectionMismatch, match="Reindex"):
        store.ensure(ModelStamp("tiny-finetuned", "beef", 8))


def test_switching_the_alias_moves_searches_in_one_step(store: VectorStore) -> None:
    store.upsert(entries(3))
    old = store.resolve()
    new = store.create_collection(STAMP)
    store.upsert(entries(7), new)
    assert store.wait_for_index(new, serving=False) == "finished"
    assert store.switch_to(new) == old
    assert store.count() == 7
    assert store.generations() == sorted([old, new])
    store.drop(old)
    with pytest.raises(CollectionMismatch):
        store.drop(new)


def test_a_finished_index_is_the_one_searches_use(store: VectorStore) -> None:
    """A server reports the build finished before its query nodes load it; until they
    have, a segment is searched by a coarse interim index, so the wait goes on."""
    if store.lite:
        pytest.skip("Milvus Lite's wait loads the collection itself (a server's query nodes)")
    new = store.create_collection(STAMP)
    rows = [Entry(f"{i:064x}", unit(i), f"{i:064x}.jpg", "", {}) for i in range(3000)]
    for start in range(0, len(rows), 1000):
        store.upsert(rows[start:start + 1000], new)
    assert store.wait_for_index(new, serving=False, timeout=300) == "finished"
    segments = store.client.list_loaded_segments(new)
    assert sum(s.num_rows for s in segments) == 3000
    assert all(s.index_name == "vector" for s in segments if s.num_rows >= 1024)


@pytest.mark.parametrize("tenth_filter", [
    Filters(labels=("tenth",)),  # checked on the hits' own labels
    Filters(metadata=(MetadataCondition("part", ("tenth",)),)),  # checked by Milvus, by id
], ids=["label", "metadata"])
def test_a_filter_on_a_tenth_of_the_rows_finds_the_exact_top_k(
    store: VectorStore, tenth_filter: Filters,
) -> None:
    """The share where HNSW's filtered search loses recall on a server, whatever its ef;
    there the store takes the filter's matches among an unfiltered search, and adds the
    filtered search's when those are too few (queries far from the matching rows)."""
    towards = np.eye(8, dtype=np.float32)[0] * 3

    def vector(i: int) -> np.ndarray:  # the matching rows lie towards +x
        v = unit(i) + (towards if i % 10 == 0 else 0)
        return (v / np.linalg.norm(v)).astype(np.float32)

    rows = [Entry(f"{i:064x}", vector(i), f"{i:064x}.jpg", "tenth" if i % 10 == 0 else "rest",
                  {"part": "tenth" if i % 10 == 0 else "rest"})
            for i in range(2000)]
    for start in range(0, len(rows), 500):
        store.upsert(rows[start:start + 500])
    store.wait_for_index(serving=False, timeout=300)
    vectors = np.stack([r.vector for r in rows])
    tenth = np.arange(0, 2000, 10)
    for seed in range(10_000, 10_010):
        near, away = (q / np.linalg.norm(q) for q in (unit(seed) + towards, unit(seed) - towards))
        for query in (near, away):
            expected = tenth[np.argsort(-(vectors[tenth] @ query))][:10]
            hits = store.search(query, 5, offset=5, filters=tenth_filter)
            got = [int(h.id, 16) for h in hits]
            assert all(h.label == "tenth" and h.key == f"{int(h.id, 16):064x}.jpg"
                       and h.metadata == {"part": "tenth"} for h in hits)
            if query is near:  # enough matches among the unfiltered nearest: exact
                assert got == expected[5:].tolist()
            else:  # HNSW's filtered search fills the page (as good as it gets)
                assert len(got) == 5 and len(set(got) & set(expected[5:].tolist())) >= 4
                assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_a_filter_that_matched_nothing_finds_a_row_written_since_by_another_process(
    store: VectorStore,
) -> None:
    """Filtered searches keep row counts for a few seconds, but never a zero."""
    store.upsert(entries(4))
    other = VectorStore(store.client, store.alias, lite=store.lite)  # another worker
    only_new = Filters(labels=("new",))
    assert store.search(unit(9), 3, filters=only_new) == []
    other.upsert([Entry(f"{99:064x}", unit(9), f"{99:064x}.jpg", "new", {})])
    found = wait_until(lambda: store.search(unit(9), 3, filters=only_new),
                       timeout=COUNT_SECONDS / 2, what="the new row, by the store that counted 0")
    assert [h.id for h in found] == [f"{99:064x}"]


def test_info_reports_the_collection(store: VectorStore) -> None:
    store.upsert(entries(4))
    info = store.info()
    assert (info.rows, info.index_type, info.metric) == (4, "HNSW", "COSINE")
    assert info.stamp == STAMP


def test_an_unreachable_server_is_a_clear_error() -> None:
    from flask import Flask

    from app.vectors.connect import connect_milvus
    from app.vectors.processes import free_port as _free_port

    uri = f"http://127.0.0.1:{_free_port()}"
    app = Flask(__name__)
    app.config.update(MILVUS_URI=uri, MILVUS_TIMEOUT=2, MILVUS_TOKEN="", COLLECTION="x")
    with pytest.raises(VectorStoreUnavailable, match="is unreachable") as caught:
        connect_milvus(app)
    assert uri in caught.value.message and "LOOKALIKE_MILVUS_URI" in caught.value.message


def test_a_raw_grpc_failure_is_an_unavailable_index_not_a_500() -> None:
    """pymilvus lets some gRPC errors through unwrapped (a deadline after a server restart)."""
    import grpc

    from app.vectors.calls import milvus_call

    class Deadline(grpc.RpcError):
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.DEADLINE_EXCEEDED

    @milvus_call("counting rows")
    def count() -> int:
        raise Deadline()

    with pytest.raises(VectorStoreUnavailable, match="counting rows failed: DEADLINE_EXCEEDED"):
        count()


def test_a_released_collection_is_loaded_again_when_used(store: VectorStore) -> None:
    """Milvus Lite comes back from a restart with every collection released."""
    if not store.lite:  # a server reloads them itself; a release there is an operator's act
        pytest.skip("only Milvus Lite forgets loaded collections on restart")
    store.upsert(entries(5))
    target = store.resolve()
    assert target is not None
    store.client.release_collection(target)
    assert store.count() == 5
    store.client.release_collection(target)
    assert store.search(unit(2), 1)[0].id == f"{2:064x}"
    store.client.release_collection(target)
    assert store.get(f"{3:064x}").key == f"{3:064x}.jpg"


@pytest.mark.parametrize("failures", [1, 3])
def test_a_failed_lite_flush_is_tried_again_and_then_reported(
    store: VectorStore, monkeypatch: pytest.MonkeyPatch, failures: int
) -> None:
    """Lite's flush once failed reading an index file its background build was writing
    (CI): it is repeated, and only a flush that keeps failing makes the index unavailable."""
    from pymilvus import MilvusException

    import app.vectors.lifecycle as lifecycle

    if not store.lite:
        pytest.skip("only Milvus Lite's flush is tried again")
    monkeypatch.setattr(lifecycle, "FLUSH_BACKOFF_S", 0.0)
    store.upsert(entries(5))
    real_flush, calls = store.client.flush, []

    def flaky_flush(*args, **kwargs):
        calls.append(args)
        if len(calls) <= failures:  # the error Lite raised, on the real server's call path
            raise MilvusException(message="Error in void faiss::read_xb_vector: read error")
        return real_flush(*args, **kwargs)

    monkeypatch.setattr(store.client, "flush", flaky_flush)
    target = store.resolve()
    if failures == 1:  # the failure seen: once
        assert store.wait_for_index(target, serving=False) == "finished"
        assert len(calls) == 2 and store.count() == 5
    else:  # one that keeps failing is reported after a few tries, not retried forever
        with pytest.raises(VectorStoreUnavailable, match="flushing failed: .*read error"):
            store.wait_for_index(target, serving=False)
        assert len(calls) == lifecycle.FLUSH_ATTEMPTS == failures


def test_iterate_and_page_walk_every_row_whatever_order_they_were_inserted_in(
    store: VectorStore,
) -> None:
    """Milvus Lite answers a limited query in insertion order, not by id: paging must not
    depend on that (a reindex once lost every row it skipped)."""
    rows = entries(2500)
    order = np.random.default_rng(3).permutation(len(rows))
    for start in range(0, len(rows), 500):
        store.upsert([rows[i] for i in order[start : start + 500]])
    listed = [e.id for e in store.iterate(batch_size=1000)]
    assert listed == sorted(e.id for e in rows)
    walked, after = [], ""
    while page := store.page(after, 97):
        walked += [e.id for e in page]
        after = page[-1].id
    assert walked == listed


def test_a_hit_is_admitted_by_exact_label_and_id_alone() -> None:
    """The over-fetch path checks labels and the excluded id on the hits themselves:
    exact equality, nothing looser (a case or prefix difference is another label)."""
    tenth = Filters(labels=("tenth", 'a" or label != "'), exclude_id="self")
    assert tenth.checkable_on_hits()
    assert tenth.admits("x", "tenth") and tenth.admits("x", 'a" or label != "')
    assert not tenth.admits("x", "Tenth") and not tenth.admits("x", "tent")
    assert not tenth.admits("self", "tenth")
    assert Filters(exclude_id="self").admits("x", "anything")
    assert not Filters(metadata=(MetadataCondition("part", ("tenth",)),)).checkable_on_hits()
