"""Request ids, JSON request log lines and the Prometheus metrics of one process.

The multi-worker sums are checked with real gunicorn in tests/test_ratelimit.py.
"""

from __future__ import annotations

import io
import json
import logging
import re

import pytest


@pytest.fixture
def metered(make_app, collection_name, monkeypatch):  # type: ignore[no-untyped-def]
    # In-process: the process's own registry (a multiprocess folder is gunicorn's).
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    return make_app(API_KEYS_COLLECTION=f"{collection_name}_keys", RATELIMIT_MANAGE="1/minute")


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_every_response_has_a_request_id_and_a_good_one_from_nginx_is_kept(metered) -> None:
    client = metered.test_client()
    made = client.get("/api/health").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    kept = client.get("/api/health", headers={"X-Request-ID": "nginx-0123456789abcdef"})
    assert kept.headers["X-Request-ID"] == "nginx-0123456789abcdef"
    for bad in ("short", "x" * 200, "has space 12345", "semi;colon;12345"):
        replaced = client.get("/api/health", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert replaced != bad and re.fullmatch(r"[0-9a-f]{32}", replaced)


def test_one_json_line_per_request_names_the_key_never_the_token(
    metered, caplog: pytest.LogCaptureFixture
) -> None:
    from app.apikeys.auth import key_store

    with metered.app_context():
        token = key_store().create("shop", "manage")[1]
    client = metered.test_client()
    with caplog.at_level(logging.INFO, logger="lookalike.request"):
        client.get(
            "/api/images?limit=5",
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-000000000001"},
        )
        client.get("/api/labels")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "lookalike.request"]
    assert len(lines) == 2
    keyed, anonymous = lines
    assert keyed == {
        **keyed,
        "request_id": "req-000000000001",
        "method": "GET",
        "route": "/api/images",
        "status": 200,
        "key": "shop",
        "client": None,
    }
    assert keyed["duration_ms"] >= 0 and "limit" not in json.dumps(keyed)
    assert anonymous["key"] is None and anonymous["client"] == "127.0.0.1"
    assert token not in caplog.text


def test_metrics_count_requests_search_stages_limits_and_the_gallery(metered, photos) -> None:
    from app.apikeys.auth import key_store

    with metered.app_context():
        token = key_store().create("shop", "manage")[1]
    client = metered.test_client()
    before = client.get("/metrics").get_data(as_text=True)
    headers = {"Authorization": f"Bearer {token}"}
    upload = {
        "image": [(io.BytesIO(photos["coffee"]), "c.jpg"), (io.BytesIO(photos["rocket"]), "r.jpg")]
    }
    assert client.post("/api/images", headers=headers, data=upload).status_code == 200
    assert client.get("/api/images", headers=headers).status_code == 429  # 1 a minute
    search = client.post("/api/search", data={"image": (io.BytesIO(photos["coffee"]), "q.jpg")})
    assert search.status_code == 200
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)

    def grew(name: str, **labels: str) -> float:
        return sample(text, name, **labels) - sample(before, name, **labels)

    assert grew("lookalike_requests_total", route="/api/search", method="POST", status="200") == 1
    assert grew("lookalike_requests_total", route="/api/images", status="429") == 1
    assert grew("lookalike_rate_limited_total", scope="manage") == 1
    for stage in ("decode", "embed", "search", "total"):
        assert grew("lookalike_search_stage_seconds_count", stage=stage) == 1
    assert grew("lookalike_model_batch_size_count") >= 2  # the upload's batch and the query
    assert sample(text, "lookalike_gallery_images") == 2
    assert sample(text, "lookalike_reindex_active") == 0


def test_the_grafana_dashboard_uses_only_metrics_we_export() -> None:
    from pathlib import Path

    from app.metrics import registry

    dashboard = Path(__file__).resolve().parent.parent / "docs/grafana/lookalike.json"
    exprs = [t["expr"] for p in json.loads(dashboard.read_text())["panels"] for t in p["targets"]]
    used = {
        re.sub(r"_(bucket|sum|count|total)$", "", name)
        for expr in exprs
        for name in re.findall(r"lookalike_\w+", expr)
    }
    exported = {m._name for m in vars(registry).values() if hasattr(m, "_name")}
    assert used and used <= exported, used - exported
