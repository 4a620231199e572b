"""The OpenAPI document: valid, complete, served with offline docs, and true to the app.

The property test sends requests generated from the document (schemathesis,
in process) to every operation, with a ``manage`` key: no 5xx, and every
answer's status, content type and body conform to the document. A held job
lock makes reindex and rollback answer 409 instead of starting job processes.
"""

from __future__ import annotations

import io
import re
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from app.jobs.state import JobFiles, JobState, acquire, release
from tests.admin_fixtures import jpeg

# Routes under /api/ that are not JSON calls: the document itself and its docs page.
NOT_OPERATIONS = {"/api/openapi.json", "/api/docs", "/api/docs/<name>"}
EXAMPLES = 40  # per operation and mode: over a thousand requests, a couple of minutes on 2 cores


@pytest.fixture
def api_app(make_app, collection_name):  # type: ignore[no-untyped-def]
    return make_app(API_KEYS_COLLECTION=f"{collection_name}_keys")


@pytest.fixture
def manage_key(api_app) -> str:  # type: ignore[no-untyped-def]
    from app.apikeys.auth import key_store

    with api_app.app_context():
        return key_store().create("fuzz", "manage")[1]


def document(app) -> dict:  # type: ignore[no-untyped-def]
    response = app.test_client().get("/api/openapi.json")
    assert response.status_code == 200
    return response.json


def test_the_document_is_valid_openapi(api_app) -> None:
    spec = document(api_app)
    validate(spec)
    assert spec["openapi"].startswith("3.")
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_every_json_route_of_the_url_map_is_in_the_document(api_app) -> None:
    paths = document(api_app)["paths"]
    missing = []
    for rule in api_app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or rule.rule in NOT_OPERATIONS:
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if method.lower() not in paths.get(path, {}):
                missing.append(f"{method} {path}")
    assert not missing, f"undocumented API routes: {missing}"
    assert len(paths) >= 8


def test_management_calls_require_a_key_in_the_document(api_app) -> None:
    paths = document(api_app)["paths"]
    assert paths["/api/images"]["post"]["security"] == [{"bearer": []}]
    assert {} in paths["/api/search"]["post"]["security"]  # open unless configured
    upload = paths["/api/images"]["post"]["requestBody"]["content"]["multipart/form-data"]
    image = upload["schema"]
    assert "binary" in str(document(api_app)["components"]["schemas"]) and image


def test_the_docs_page_and_its_files_come_from_this_server(api_app) -> None:
    client = api_app.test_client()
    page = client.get("/api/docs")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="swagger-ui"' in html
    assert not re.search(r"(src|href)=\"https?://", html)
    assert "<script>" not in html  # CSP: no inline script
    for name in ("swagger-ui-bundle.js", "swagger-ui-preset.js", "swagger-ui.css"):
        asset = client.get(f"/api/docs/{name}")
        assert asset.status_code == 200 and len(asset.data) > 1000, name
    assert "SwaggerUIBundle" in client.get("/api/docs/swagger-ui-bundle.js").get_data(True)
    assert client.get("/api/docs/../../etc/passwd").status_code == 404


def test_a_request_that_breaks_the_document_gets_our_error_format(api_app, manage_key) -> None:
    client = api_app.test_client()
    headers = {"Authorization": f"Bearer {manage_key}"}
    client.post("/api/images", headers=headers, data={"image": [(io.BytesIO(jpeg(1)), "a.jpg")]})
    key = client.get("/api/images", headers=headers).json["images"][0]["key"]
    response = client.patch(f"/api/images/{key}", headers=headers, json={"colour": "red"})
    assert response.status_code == 400
    error = response.json["error"]
    assert error["status"] == 400 and "colour" in error["message"]


@pytest.fixture
def api_schema(api_app, manage_key, photos):  # type: ignore[no-untyped-def]
    """The app with a few images, a held job lock, and the schema read from it."""
    client = api_app.test_client()
    headers = {"Authorization": f"Bearer {manage_key}"}
    files = [(io.BytesIO(data), f"{name}.jpg") for name, data in list(photos.items())[:3]]
    assert client.post("/api/images", headers=headers, data={"image": files}).status_code == 200
    jobs = JobFiles(api_app.instance_path)
    fd = acquire(jobs.lock)
    jobs.write(JobState(id="held", phase="encoding", started=time.time()))
    yield schemathesis.openapi.from_wsgi("/api/openapi.json", api_app)
    release(fd)


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests_get_no_5xx_and_answers_that_match_the_document(
    api_schema, manage_key, mode
) -> None:
    """Every operation, EXAMPLES generated requests each (schemathesis' pytest plugin
    does not run under pytest 9, so its strategies are driven by hypothesis here)."""
    headers = {"Authorization": f"Bearer {manage_key}"}
    base = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 12
    failures = {}
    for operation in operations:
        checks = list(base)
        content = operation.definition.raw.get("requestBody", {}).get("content", {})
        # Query strings and multipart fields carry text: "2" meant as a number and "2" meant
        # as a string are the same request, so "should have been rejected" applies only to
        # JSON bodies, where a type violation is visible on the wire.
        if mode is GenerationMode.NEGATIVE and "application/json" in content:
            checks.append(negative_data_rejection)

        run = _fuzzer(operation, mode, checks, headers)
        try:
            run()
        except Unsatisfiable:  # no parameters or body: nothing to make invalid
            assert mode is GenerationMode.NEGATIVE
        except Exception as exc:  # noqa: BLE001 - collected, reported together below
            failures[f"{operation.method.upper()} {operation.path}"] = str(exc)[:1500]
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in failures.items())


def _fuzzer(operation, mode, checks, headers):  # type: ignore[no-untyped-def]
    """A hypothesis test of one operation: EXAMPLES generated requests and the checks."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:  # type: ignore[no-untyped-def]
        case.call_and_validate(headers=headers, checks=checks)

    return run
