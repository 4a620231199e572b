"""Filters, minimum score, offset and one-per-label against real Milvus Lite.

A gallery of synthetic rows (the tiny model's dimension) is written through the
app's own VectorStore; every answer of the JSON API is compared with an exact
search computed with numpy over the same rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from app.vectors.filters import Filters, string_literal
from app.vectors.records import Entry

DIM = 64
NASTY = 'x" or label != "'  # a real label in the gallery, as well as an attack
LABELS = ["apple", "bread", "milk", NASTY, "back\\slash", "ünï 中"]


@dataclass
class Gallery:
    entries: list[Entry]

    def key(self, i: int) -> str:
        return self.entries[i].key

    def exact(self, query: int, k: int, keep=lambda e: True) -> list[str]:  # type: ignore[no-untyped-def]
        """Keys of the exact top k over the rows ``keep`` accepts, the query left out."""
        vectors = np.stack([e.vector for e in self.entries])
        scores = vectors @ self.entries[query].vector
        order = np.argsort(-scores, kind="stable")
        picked = [self.entries[i].key for i in order
                  if i != query and keep(self.entries[i])]
        return picked[:k]

    def scores(self, query: int) -> dict[str, float]:
        q = self.entries[query].vector
        return {e.key: float(e.vector @ q) for e in self.entries}


def _entries(n: int = 90) -> list[Entry]:
    rng = np.random.default_rng(18)
    out = []
    for i in range(n):
        vector = rng.normal(size=DIM).astype(np.float32)
        digest = hashlib.sha256(f"row{i}".encode()).hexdigest()
        metadata: dict[str, Any] = {"brand": ["Arla", "Alpro", "Oatly"][i % 3], "price": i % 30}
        out.append(Entry(digest, vector / np.linalg.norm(vector), f"{digest}.jpg",
                         LABELS[i % len(LABELS)], metadata))
    return out


@pytest.fixture
def gallery(app) -> Gallery:  # type: ignore[no-untyped-def]
    from app.extensions import vectors

    entries = _entries()
    with app.app_context():
        vectors().upsert(entries)
    return Gallery(entries)


def search(client, key: str, **params: Any):  # type: ignore[no-untyped-def]
    query = [("key", key)]
    for name, value in params.items():
        for v in value if isinstance(value, list) else [value]:
            query.append((name, v if isinstance(v, str) else json.dumps(v)))
    return client.get("/api/search", query_string=query)


def keys_of(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.get_json()
    return [r["key"] for r in response.get_json()["results"]]


@pytest.mark.parametrize("labels", [["apple"], ["bread", "milk"], [NASTY], ["back\\slash"],
                                    ["ünï 中", "apple"]])
def test_a_label_filter_returns_the_exact_filtered_top_k(client, gallery, labels) -> None:
    got = keys_of(search(client, gallery.key(0), k=10, label=labels))
    assert got == gallery.exact(0, 10, lambda e: e.label in labels)


@pytest.mark.parametrize("spec, keep", [
    ({"brand": "Arla"}, lambda m: m["brand"] == "Arla"),
    ({"brand": ["Alpro", "Oatly"]}, lambda m: m["brand"] in ("Alpro", "Oatly")),
    ({"price": {"lt": 20, "gte": 5}}, lambda m: 5 <= m["price"] < 20),
    ({"price": {"gt": 3.5, "lte": 10}}, lambda m: 3.5 < m["price"] <= 10),
    ({"brand": "Oatly", "price": {"lte": 12}},
     lambda m: m["brand"] == "Oatly" and m["price"] <= 12),
    ({"price": 7}, lambda m: m["price"] == 7),
])
def test_a_metadata_filter_returns_the_exact_filtered_top_k(client, gallery, spec, keep) -> None:
    got = keys_of(search(client, gallery.key(1), k=8, metadata=json.dumps(spec)))
    assert got == gallery.exact(1, 8, lambda e: keep(e.metadata))
    assert len(got) > 0


def test_labels_and_metadata_combine(client, gallery) -> None:
    got = keys_of(search(client, gallery.key(2), k=5, label=["apple", "milk"],
                         metadata=json.dumps({"brand": "Arla"})))
    assert got == gallery.exact(
        2, 5, lambda e: e.label in ("apple", "milk") and e.metadata["brand"] == "Arla")


@pytest.mark.parametrize("attack", [
    '" or label != "', "x' or label != '", 'apple" or "1" == "1', "apple\\", '\\"',
    ") or (label != ", "apple) or (true", '"] or label like "%', "apple\n", "\t",
    "\u202eelppa", "🍎", "a" * 10_000, '"' * 5000, "\\" * 5000,
])
def test_label_injection_attempts_match_nothing(client, gallery, attack) -> None:
    response = search(client, gallery.key(0), k=10, label=attack)
    assert response.status_code == 200
    assert response.get_json()["results"] == []
    assert response.get_json()["empty_reason"] == "No gallery image matches the filters."


@pytest.mark.parametrize("attack", ['Arla" or metadata["brand"] != "', "Arla\\", '{"lt": 5}'])
def test_metadata_value_injection_matches_nothing(client, gallery, attack) -> None:
    response = search(client, gallery.key(0), metadata=json.dumps({"brand": attack}))
    assert response.status_code == 200 and response.get_json()["results"] == []


def test_a_string_literal_reads_back_as_the_same_string(app, gallery) -> None:
    """Every stored label, quotes and backslashes included, is found by its literal alone."""
    from app.extensions import vectors

    with app.app_context():
        store = vectors()
        for label in LABELS:
            rows = store.client.query(store.alias, filter=f"label == {string_literal(label)}",
                                      output_fields=["label"], limit=100)
            assert rows and {r["label"] for r in rows} == {label}


def test_min_score_cuts_exactly_at_the_threshold(app, gallery) -> None:
    from app.extensions import vectors

    query = gallery.entries[3].vector
    with app.app_context():
        store = vectors()
        ranked = store.search(query, 30)
        for cut in (1, 5, 17):
            threshold = ranked[cut - 1].score
            kept = store.search(query, 30, min_score=threshold)
            assert [h.id for h in kept] == [h.id for h in ranked[:cut]]
            assert all(h.score >= threshold for h in kept)


def test_min_score_in_the_api_returns_what_reaches_it_and_says_why_when_nothing_does(
    client, gallery
) -> None:
    scores = gallery.scores(4)
    threshold = 0.1
    got = keys_of(search(client, gallery.key(4), k=100, min_score=str(threshold)))
    expected = [k for k in gallery.exact(4, 100) if scores[k] >= threshold]
    assert got == expected and 0 < len(got) < 89
    empty = search(client, gallery.key(4), k=10, min_score="0.99").get_json()
    assert empty["results"] == [] and empty["next_offset"] is None
    assert empty["empty_reason"] == "No image reaches the minimum score of 0.99."


def test_offset_pages_through_the_same_ranking(client, gallery) -> None:
    first = search(client, gallery.key(5), k=20).get_json()
    second = search(client, gallery.key(5), k=10, offset="10").get_json()
    assert [r["key"] for r in second["results"]] == [r["key"] for r in first["results"][10:20]]
    assert [r["rank"] for r in second["results"]] == list(range(11, 21))
    assert first["next_offset"] == 20 and second["next_offset"] == 20
    assert second["query"] == {"k": 10, "offset": 10, "min_score": None, "box": None,
                               "per_label": False, "filters": {"label": [], "metadata": {}}}
    last = search(client, gallery.key(5), k=10, offset="85").get_json()
    assert len(last["results"]) == 4 and last["next_offset"] is None  # 89 others in all


def test_offset_pages_through_filtered_results_too(client, gallery) -> None:
    whole = keys_of(search(client, gallery.key(6), k=12, label="milk"))
    page = keys_of(search(client, gallery.key(6), k=6, offset="6", label="milk"))
    assert page == whole[6:12] == gallery.exact(6, 12, lambda e: e.label == "milk")[6:]


def test_per_label_returns_the_best_image_of_each_label(client, gallery) -> None:
    body = search(client, gallery.key(7), k=10, per_label="1").get_json()
    labels = [r["label"] for r in body["results"]]
    assert sorted(labels) == sorted(LABELS)  # six labels, each once
    for result in body["results"]:
        best = gallery.exact(7, 1, lambda e, label=result["label"]: e.label == label)
        assert result["key"] == best[0]
    assert body["next_offset"] is None


@pytest.mark.parametrize("params, says", [
    ({"metadata": "{brand: Arla}"}, "not valid JSON"),
    ({"metadata": "[1, 2]"}, "metadata must be a JSON object"),
    ({"metadata": '{"bra nd": "x"}'}, "metadata key"),
    ({"metadata": '{"' + "k" * 65 + '": 1}'}, "metadata key"),
    ({"metadata": '{"price": {"between": [1, 2]}}'}, "lt, lte, gt, gte"),
    ({"metadata": '{"price": {"lt": "20"}}'}, "must be a number"),
    ({"metadata": '{"price": {"lt": NaN}}'}, "must be a number"),
    ({"metadata": '{"brand": {"a": 1}}'}, "lt, lte, gt, gte"),
    ({"metadata": '{"brand": [true]}'}, "strings or numbers"),
    ({"metadata": '{"brand": []}'}, "give 1 to"),
    ({"min_score": "1.5"}, "min_score must be"),
    ({"min_score": "nan"}, "min_score must be"),
    ({"min_score": "high"}, "min_score must be"),
    ({"box": "0.1,0.1,0.5"}, "box must be"),
    ({"box": "0.5,0.1,0.2,0.9"}, "box must be"),
    ({"box": "0,0,1.2,1"}, "box must be"),
    ({"box": "a,b,c,d"}, "box must be"),
    ({"box": "0.1,0.1,0.105,0.9"}, "at least"),
    ({"offset": "-1"}, "offset must not be negative"),
    ({"offset": "ten"}, "offset must be a whole number"),
    ({"offset": "995", "k": "10"}, "offset + k must be at most 1000"),
    ({"per_label": "yes"}, "per_label must be"),
])
def test_malformed_values_get_a_400_that_says_what_is_wrong(client, gallery, params, says) -> None:
    response = search(client, gallery.key(0), **params)
    assert response.status_code == 400
    assert says in response.get_json()["error"]["message"]


def test_the_labels_endpoint_lists_labels_with_counts(client, gallery) -> None:
    body = client.get("/api/labels").get_json()
    assert {row["label"]: row["count"] for row in body["labels"]} == {
        label: 15 for label in LABELS}


def test_label_counts_are_cached_per_physical_collection(app, gallery) -> None:
    from app.extensions import gallery_labels, vectors
    from app.vectors.records import Entry

    with app.app_context():
        before = gallery_labels()
        vectors().upsert([Entry("f" * 64, gallery.entries[0].vector, "f" * 64 + ".jpg", "new")])
        assert gallery_labels() == before  # cached: no query per page view
        app.extensions["lookalike.labels"].ttl = 0
        assert gallery_labels()["new"] == 1


def test_filters_build_one_expression_from_structured_values() -> None:
    from app.vectors.filters import MetadataCondition

    filters = Filters(("a\"b",), (MetadataCondition("brand", ("Arla", 3)),
                                  MetadataCondition("price", ranges=(("lt", 20),))), "ab")
    assert filters.expression() == (
        '(label in ["a\\"b"]) and ((metadata["brand"] == "Arla" or metadata["brand"] == 3))'
        ' and ((metadata["price"] < 20)) and (id != "ab")')
    assert Filters().expression() == ""
    with pytest.raises(ValueError):
        Filters(metadata=(MetadataCondition('a"] or 1', ("x",)),)).expression()


def test_a_selective_filter_finds_the_exact_top_k_once_the_index_is_built(
    lite_server, collection_name
) -> None:
    """Lite's HNSW keeps only matching rows among the ef it visits: the store raises ef."""
    from app.vectors.connect import open_client
    from app.vectors.records import ModelStamp
    from app.vectors.store import VectorStore

    store = VectorStore(open_client(lite_server, timeout=60)[0], collection_name,
                        lite=True)
    name = store.ensure(ModelStamp("t", "t", 16))
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(4000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = np.where(np.arange(4000) % 400 == 0, "rare", "common")  # 10 rows in 4,000
    store.upsert([Entry(f"{i:064x}", vectors[i], f"{i:064x}.jpg", labels[i])
                  for i in range(4000)])
    store.wait_for_index(name, serving=False)  # HNSW built: no exact fallback inside Lite
    rare = np.flatnonzero(labels == "rare")
    for q in rng.normal(size=(10, 16)).astype(np.float32):
        expected = rare[np.argsort(-(vectors[rare] @ q))][:5]
        hits = store.search(q, 5, filters=Filters(labels=("rare",)))
        assert [int(h.id, 16) for h in hits] == expected.tolist()
    assert store.search(vectors[0], 5, filters=Filters(labels=("none",))) == []
