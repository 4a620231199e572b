"""Gallery management over HTTP: the admin page's services behind a ``manage`` key."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from app.jobs.state import JobFiles
from tests.admin_fixtures import jpeg, make_zip, wait_for_job
from tests.helpers import tiny_model

ROUTES = [
    ("post", "/api/images"),
    ("get", "/api/images"),
    ("get", "/api/images/{key}"),
    ("patch", "/api/images/{key}"),
    ("delete", "/api/images/{key}"),
    ("post", "/api/reindex"),
    ("get", "/api/reindex"),
    ("post", "/api/reindex/cancel"),
    ("post", "/api/rollback"),
]
KEY = "0" * 64 + ".jpg"


@pytest.fixture
def api_app(make_app, collection_name):  # type: ignore[no-untyped-def]
    return make_app(
        API_KEYS_COLLECTION=f"{collection_name}_keys",
        API_KEY_CACHE_SECONDS=0.2,
        REINDEX_NICE=0,
        ALIAS_CHECK_SECONDS=0.2,
    )


@pytest.fixture
def keys(api_app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from app.apikeys.auth import key_store

    with api_app.app_context():
        store = key_store()
        made = {scope: store.create(f"k-{scope}", scope)[1] for scope in ("manage", "search")}
        made["revoked"] = store.create("k-old", "manage")[1]
        store.revoke("k-old")
    return made


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def audit_lines(app) -> list[dict]:  # type: ignore[no-untyped-def]
    path = Path(app.instance_path) / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_management_route_refuses_missing_wrong_revoked_and_search_keys(
    api_app, keys, method: str, path: str
) -> None:
    client = api_app.test_client()
    url = path.format(key=KEY)
    call = getattr(client, method)
    assert call(url).status_code == 401
    assert call(url, headers=auth("lk_" + "A" * 43)).status_code == 401
    assert call(url, headers=auth(keys["revoked"])).status_code == 401
    refused = call(url, headers=auth(keys["search"]))
    assert refused.status_code == 403, refused.get_data(as_text=True)
    assert refused.json["error"]["title"] == "Not allowed for this key"


def test_uploads_over_the_api_are_reported_searchable_and_audited(api_app, keys, photos) -> None:
    client = api_app.test_client()
    files = [
        (io.BytesIO(photos["coffee"]), "coffee.jpg"),
        (io.BytesIO(photos["chelsea"]), "cat.jpg"),
        (io.BytesIO(photos["coffee"]), "coffee-again.jpg"),
        (io.BytesIO(b"not an image"), "notes.jpg"),
        (io.BytesIO(make_zip({"r/rocket.jpg": photos["rocket"]})), "more.zip"),
    ]
    response = client.post(
        "/api/images",
        headers=auth(keys["manage"]),
        data={
            "image": files,
            "label": "shop",
            "metadata": json.dumps({"sku": "A-12", "price": 9.5}),
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.json
    status = {r["name"]: r["status"] for r in body["results"]}
    assert status == {
        "coffee.jpg": "added",
        "cat.jpg": "added",
        "coffee-again.jpg": "duplicate",
        "notes.jpg": "rejected",
        "more.zip:r/rocket.jpg": "added",
    }
    assert (body["added"], body["duplicates"], body["rejected"]) == (3, 1, 1)
    rejected = next(r for r in body["results"] if r["status"] == "rejected")
    assert "not an image" in rejected["reason"]
    coffee = next(r["key"] for r in body["results"] if r["name"] == "coffee.jpg")

    found = client.post(
        "/api/search", data={"image": (io.BytesIO(photos["coffee"]), "q.jpg"), "k": "3"}
    ).json["results"]
    assert found[0]["key"] == coffee and found[0]["score"] > 0.99
    assert found[0]["label"] == "shop"
    assert found[0]["metadata"] == {"source": "coffee.jpg", "sku": "A-12", "price": 9.5}
    entry = audit_lines(api_app)[-1]
    assert entry["action"] == "gallery.upload" and entry["user"] == "apikey:k-manage"
    assert entry["details"]["added"] == 3


def test_images_are_listed_by_page_and_label_read_edited_and_deleted(api_app, keys) -> None:
    client = api_app.test_client()
    headers = auth(keys["manage"])
    for label, seeds in (("red", range(3)), ("blue", range(3, 5))):
        files = [(io.BytesIO(jpeg(s)), f"{s}.jpg") for s in seeds]
        assert client.post(
            "/api/images", headers=headers, data={"image": files, "label": label}
        ).json["added"] == len(seeds)
    first = client.get("/api/images?limit=2", headers=headers).json
    assert len(first["images"]) == 2 and first["next_after"] == first["images"][-1]["key"]
    seen = [i["key"] for i in first["images"]]
    after = first["next_after"]
    while after:
        page = client.get(f"/api/images?limit=2&after={after}", headers=headers).json
        seen += [i["key"] for i in page["images"]]
        after = page["next_after"]
    assert len(seen) == len(set(seen)) == 5 and seen == sorted(seen)
    blue = client.get("/api/images?label=blue", headers=headers).json["images"]
    assert {i["label"] for i in blue} == {"blue"} and len(blue) == 2

    key = blue[0]["key"]
    one = client.get(f"/api/images/{key}", headers=headers).json
    assert one["key"] == key and one["thumb_url"].endswith(f"/thumbs/{key}")
    edited = client.patch(
        f"/api/images/{key}", headers=headers, json={"label": "navy", "metadata": {"sku": "B-7"}}
    )
    assert edited.status_code == 200 and edited.json["label"] == "navy"
    assert client.get(f"/api/images/{key}", headers=headers).json["metadata"] == {"sku": "B-7"}
    assert (
        client.patch(
            f"/api/images/{key}", headers=headers, json={"metadata": {"bad key!": 1}}
        ).status_code
        == 400
    )
    assert client.delete(f"/api/images/{key}", headers=headers).json == {"deleted": key}
    assert client.get(f"/api/images/{key}", headers=headers).status_code == 404
    assert client.delete(f"/api/images/{key}", headers=headers).status_code == 404
    actions = [(e["action"], e["user"]) for e in audit_lines(api_app)[-3:]]
    assert actions == [
        ("gallery.label", "apikey:k-manage"),
        ("gallery.metadata", "apikey:k-manage"),
        ("gallery.delete", "apikey:k-manage"),
    ]


@pytest.mark.parametrize("metadata", ["[1, 2]", "{not json", '{"a": {"nested": 1}}'])
def test_bad_metadata_is_refused_and_nothing_is_added(api_app, keys, metadata: str) -> None:
    client = api_app.test_client()
    response = client.post(
        "/api/images",
        headers=auth(keys["manage"]),
        data={"image": [(io.BytesIO(jpeg(1)), "a.jpg")], "metadata": metadata},
    )
    assert response.status_code == 400 and "metadata" in response.json["error"]["message"].lower()
    assert client.get("/api/images", headers=auth(keys["manage"])).json["images"] == []


def test_reindex_with_another_model_then_rollback_over_the_api(
    api_app, keys, tmp_path: Path
) -> None:
    client = api_app.test_client()
    headers = auth(keys["manage"])
    client.post(
        "/api/images",
        headers=headers,
        data={"image": [(io.BytesIO(jpeg(s)), f"{s}.jpg") for s in range(4)]},
    )
    assert (
        client.post("/api/reindex", headers=headers, json={"model": "../../etc"}).status_code == 400
    )
    new_model = tiny_model(tmp_path / "new-model", hidden=32)
    started = client.post("/api/reindex", headers=headers, json={"model": str(new_model)})
    assert started.status_code == 202, started.get_data(as_text=True)
    assert started.json["job"]["model"] == str(new_model)
    again = client.post("/api/reindex", headers=headers)
    assert again.status_code in (202, 409)  # 202 only if the first one already finished
    files = JobFiles(api_app.instance_path)
    state = wait_for_job(files, timeout=180)
    assert state.phase == "done", (state.error, files.log.read_text()[-2000:])
    job = client.get("/api/reindex", headers=headers).json["job"]
    assert job["phase"] == "done" and job["done"] == 4 and job["model"] == str(new_model)
    assert client.post("/api/reindex/cancel", headers=headers).status_code == 409

    assert client.post("/api/rollback", headers=headers).status_code == 202
    assert wait_for_job(files, timeout=180).phase == "done"
    users = {
        e["user"] for e in audit_lines(api_app) if e["action"].startswith(("reindex", "rollback"))
    }
    assert users == {"apikey:k-manage"}


def test_management_calls_work_on_the_gallery_they_name(api_app, keys, photos) -> None:
    runner = api_app.test_cli_runner()
    result = runner.invoke(args=["gallery", "create", "second"])
    assert result.exit_code == 0, result.output
    client = api_app.test_client()
    reply = client.post("/api/images", headers=auth(keys["manage"]),
                        data={"gallery": "second",
                              "image": [(io.BytesIO(photos["coffee"]), "coffee.jpg")]},
                        content_type="multipart/form-data")
    assert reply.status_code == 200, reply.get_data(as_text=True)
    key = reply.json["results"][0]["key"]

    def listed(gallery: str = "") -> list[str]:
        query = f"?gallery={gallery}" if gallery else ""  # none: the default gallery
        page = client.get(f"/api/images{query}", headers=auth(keys["manage"]))
        assert page.status_code == 200, page.get_data(as_text=True)
        return [image["key"] for image in page.json["images"]]

    assert listed("second") == [key]
    assert key not in listed()
    unknown = client.get("/api/images?gallery=nope", headers=auth(keys["manage"]))
    assert unknown.status_code == 404 and "second" in unknown.json["error"]["galleries"]
