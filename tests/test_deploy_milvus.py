"""The same code against a real Milvus standalone server (2.3.5 from PyPI), not Milvus Lite.

Every vector-store test of test_vectors.py that takes the ``store`` fixture
runs again here, and so does the end-to-end path (CLI ingest, search by
upload, more-like-this, health), with the app's MILVUS_URI pointing at the
server started by ``tests.servers.milvus_server``.
"""

from __future__ import annotations

import inspect
import socket
from pathlib import Path

import pytest

from app.vectors.connect import open_client
from app.vectors.store import VectorStore
from tests import test_vectors
from tests.servers import (
    ETCD_PEER_PORT,
    MilvusStandalone,
    milvus_server,  # noqa: F401  (fixture)
    port_is_free,
)
from tests.test_search import (  # noqa: F401  (collected here again, against the server)
    add_gallery,
    test_every_gallery_image_finds_itself_first,
    test_more_like_this_searches_by_key_and_leaves_the_query_out,
    test_results_carry_links_labels_and_ranks,
)
from tests.test_search_filters import (  # noqa: F401  (collected here again, against the server)
    gallery,
    test_a_label_filter_returns_the_exact_filtered_top_k,
    test_a_metadata_filter_returns_the_exact_filtered_top_k,
    test_label_injection_attempts_match_nothing,
    test_min_score_cuts_exactly_at_the_threshold,
    test_min_score_in_the_api_returns_what_reaches_it_and_says_why_when_nothing_does,
    test_offset_pages_through_filtered_results_too,
    test_offset_pages_through_the_same_ranking,
    test_per_label_returns_the_best_image_of_each_label,
)

pytestmark = pytest.mark.slow

for _name, _test in vars(test_vectors).items():
    if _name.startswith("test_") and "store" in inspect.signature(_test).parameters:
        globals()[_name] = _test


@pytest.fixture(scope="session")
def lite_server(milvus_server: str) -> str:  # noqa: F811
    """Here the conftest's apps (make_app, app, client, runner) use the Milvus server."""
    return milvus_server


@pytest.fixture
def store(milvus_server: str, collection_name: str) -> VectorStore:  # noqa: F811
    client = open_client(milvus_server, timeout=10)[0]
    store = VectorStore(client, collection_name, lite=False)
    store.ensure(test_vectors.STAMP)
    return store


def test_the_server_is_a_milvus_server_not_lite(milvus_server: str) -> None:  # noqa: F811
    version = open_client(milvus_server, timeout=10)[0].get_server_version()
    assert not version.startswith("milvus_lite") and version.startswith("v2.")


def test_health_reports_the_server_and_the_gallery_size(client, runner, gallery_dir) -> None:
    add_gallery(runner, gallery_dir)
    reply = client.get("/api/health")
    assert reply.status_code == 200, reply.get_json()
    milvus = reply.get_json()["milvus"]
    assert (milvus["mode"], milvus["reachable"], milvus["gallery_size"]) == ("server", True, 6)


def test_index_status_reports_a_finished_hnsw_index(runner, gallery_dir) -> None:
    add_gallery(runner, gallery_dir)
    result = runner.invoke(args=["index", "status"])
    assert result.exit_code == 0, result.output
    assert "HNSW COSINE" in result.output and "index state: finished" in result.output


def test_a_taken_etcd_peer_port_is_reported_at_once(tmp_path: Path) -> None:
    """Outside a private network namespace, a second milvus-server would hang on it."""
    blocker = socket.socket()
    if port_is_free(ETCD_PEER_PORT):
        blocker.bind(("127.0.0.1", ETCD_PEER_PORT))
        blocker.listen()
    server = MilvusStandalone("/nonexistent/milvus-server", tmp_path, isolate=False)
    try:
        with pytest.raises(RuntimeError, match="Port 2380"):
            server.start(timeout=5)
        assert server.process is None  # refused before anything was started
    finally:
        blocker.close()
