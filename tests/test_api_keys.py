"""API keys: made once, stored hashed in Milvus, refused when wrong, revoked or too narrow."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from app.apikeys.store import hash_token


def make_key(app, name: str = "shop", scope: str = "manage") -> str:  # type: ignore[no-untyped-def]
    with app.app_context():
        from app.apikeys.auth import key_store

        return key_store().create(name, scope)[1]


@pytest.fixture
def keyed_app(make_app, collection_name):  # type: ignore[no-untyped-def]
    """An app with its own key collection, and a key cache short enough for revocation."""
    return make_app(
        API_KEYS_COLLECTION=f"{collection_name}_keys",
        API_KEY_CACHE_SECONDS=0.5,
        SEARCH_REQUIRES_KEY=True,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_created_key_is_shown_once_and_only_its_hash_is_stored(keyed_app) -> None:
    token = make_key(keyed_app)
    with keyed_app.app_context():
        from app.apikeys.auth import key_store

        store = key_store()
        rows = store.client.query(
            store.collection,
            filter='name == "shop"',
            output_fields=["*"],
            consistency_level="Strong",
        )
    assert len(rows) == 1
    assert token not in str(rows[0])
    assert rows[0]["hash"] == hash_token(token)
    assert token.startswith("lk_") and len(token) == 46


def test_the_cli_creates_lists_and_revokes_keys(keyed_app) -> None:
    runner = keyed_app.test_cli_runner()
    made = runner.invoke(args=["apikey", "create", "--name", "dam", "--scope", "search"])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip().splitlines()[0]
    assert token.startswith("lk_")
    client = keyed_app.test_client()
    assert client.get("/api/labels", headers=bearer(token)).status_code == 200
    listed = runner.invoke(args=["apikey", "list"])
    assert "dam" in listed.output and "search" in listed.output and token not in listed.output
    again = runner.invoke(args=["apikey", "create", "--name", "dam", "--scope", "manage"])
    assert again.exit_code == 1 and "exists already" in again.output
    revoked = runner.invoke(args=["apikey", "revoke", "dam"])
    assert revoked.exit_code == 0, revoked.output
    assert "revoked" in runner.invoke(args=["apikey", "list"]).output.splitlines()[0]


def test_searches_need_a_key_when_configured_and_are_open_otherwise(make_app, keyed_app) -> None:
    assert keyed_app.test_client().get("/api/labels").status_code == 401
    open_app = make_app(API_KEYS_COLLECTION="unused_keys")
    assert open_app.test_client().get("/api/labels").status_code == 200


@pytest.mark.parametrize("header", ["", "Bearer lk_" + "x" * 43, "Basic abc", "Bearer nope"])
def test_wrong_or_missing_keys_answer_401_in_our_error_format(keyed_app, header: str) -> None:
    make_key(keyed_app)
    headers = {"Authorization": header} if header else {}
    response = keyed_app.test_client().get("/api/images", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json["error"]["status"] == 401
    assert "x" * 43 not in response.get_data(as_text=True)


def test_a_search_key_cannot_manage(keyed_app) -> None:
    token = make_key(keyed_app, "reader", "search")
    client = keyed_app.test_client()
    assert client.get("/api/labels", headers=bearer(token)).status_code == 200
    response = client.get("/api/images", headers=bearer(token))
    assert response.status_code == 403
    assert "manage" in response.json["error"]["message"]


def test_a_key_made_by_one_worker_works_on_another_and_revocation_reaches_it(
    make_app, keyed_app
) -> None:
    """Two app instances stand for two workers: each has its own store and cache."""
    other = make_app(
        API_KEYS_COLLECTION=keyed_app.config["API_KEYS_COLLECTION"],
        API_KEY_CACHE_SECONDS=0.5,
        SEARCH_REQUIRES_KEY=True,
    )
    token = make_key(keyed_app)
    client = other.test_client()
    assert client.get("/api/images", headers=bearer(token)).status_code == 200
    with keyed_app.app_context():
        from app.apikeys.auth import key_store

        key_store().revoke("shop")
    from tests.helpers import wait_until

    wait_until(
        lambda: client.get("/api/images", headers=bearer(token)).status_code == 401,
        timeout=5.0,
        what="the revoked key to be refused by the other worker",
    )


def test_last_used_is_recorded(keyed_app) -> None:
    token = make_key(keyed_app)
    keyed_app.test_client().get("/api/images", headers=bearer(token))
    with keyed_app.app_context():
        from app.apikeys.auth import key_store

        (key,) = key_store().list()
    assert key.last_used >= key.created > 0


def test_a_key_is_never_accepted_from_the_query_string_or_a_form(keyed_app) -> None:
    token = make_key(keyed_app)
    client = keyed_app.test_client()
    assert client.get(f"/api/images?key={token}").status_code == 401
    data = {"image": (io.BytesIO(b"x"), "a.jpg"), "api_key": token}
    assert client.post("/api/images", data=data).status_code == 401


def test_the_admin_page_creates_a_key_once_and_revokes_it(make_app, collection_name) -> None:
    import re

    from werkzeug.security import generate_password_hash

    from tests.admin_fixtures import PASSWORD, log_in

    app = make_app(
        API_KEYS_COLLECTION=f"{collection_name}_keys",
        API_KEY_CACHE_SECONDS=0.2,
        ADMIN_PASSWORD_HASH=generate_password_hash(PASSWORD),
    )
    client = app.test_client()
    assert client.get("/admin/keys").status_code == 302  # login first
    log_in(client)
    made = client.post("/admin/keys", data={"name": "web-shop", "scope": "manage"})
    page = made.get_data(as_text=True)
    assert made.status_code == 200 and "shown only now" in page
    token = re.search(r'<code class="secret">(lk_[^<]+)</code>', page)[1]
    api = app.test_client()
    assert api.get("/api/images", headers=bearer(token)).status_code == 200
    listing = client.get("/admin/keys").get_data(as_text=True)
    assert "web-shop" in listing and token not in listing
    revoked = client.post("/admin/keys/web-shop/revoke")
    assert revoked.status_code == 303

    from tests.helpers import wait_until

    wait_until(
        lambda: api.get("/api/images", headers=bearer(token)).status_code == 401,
        5.0,
        "the revoked key to be refused",
    )
    actions = [line for line in (Path(app.instance_path) / "audit.log").read_text().splitlines()]
    assert '"apikey.create"' in actions[-2] and '"apikey.revoke"' in actions[-1]
    assert token not in "".join(actions)
