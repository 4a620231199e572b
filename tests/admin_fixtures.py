"""Fixtures and helpers for the admin and reindex tests.

Test modules register the fixtures with ``pytest_plugins = ["tests.admin_fixtures"]``
and import the helpers. PYTEST_DONT_REWRITE: the module is imported both ways, so
pytest must not try to rewrite its asserts (it would warn, and warnings are errors).
"""

from __future__ import annotations

import io
import re
import time

import pytest
from PIL import Image

from app.jobs.state import JobFiles, JobState
from tests.helpers import make_zip, tiny_model  # noqa: F401  (re-exported)

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def admin_hash() -> str:
    from werkzeug.security import generate_password_hash

    return generate_password_hash(PASSWORD)


@pytest.fixture
def admin_app(make_app, admin_hash: str):  # type: ignore[no-untyped-def]
    """The test app with an admin password, a fast alias check and an un-niced job."""
    return make_app(ADMIN_PASSWORD_HASH=admin_hash, ALIAS_CHECK_SECONDS=0.2, REINDEX_NICE=0)


@pytest.fixture
def admin_client(admin_app):  # type: ignore[no-untyped-def]
    client = admin_app.test_client()
    log_in(client)
    return client


def log_in(client, password: str = PASSWORD, user: str = "admin"):  # type: ignore[no-untyped-def]
    response = client.post("/admin/login", data={"username": user, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return response


def jpeg(seed: int, size: tuple[int, int] = (72, 56)) -> bytes:
    """A small, distinct JPEG (a colour gradient per seed)."""
    w, h = size
    image = Image.new("RGB", size)
    image.putdata([((x * 7 + seed * 37) % 256, (y * 5 + seed * 91) % 256, (seed * 53) % 256)
                   for y in range(h) for x in range(w)])
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def upload(client, files: dict[str, bytes], **fields):  # type: ignore[no-untyped-def]
    data = {"files": [(io.BytesIO(b), name) for name, b in files.items()], **fields}
    return client.post("/admin/gallery/upload", data=data, content_type="multipart/form-data")


def outcomes(page: str) -> dict[str, str]:
    """File name -> result from the upload results table."""
    rows = re.findall(r"<tr class=\"(\w+)\">\s*<td>([^<]*)</td>", page)
    return {name.split(":")[-1]: status for status, name in rows}


def wait_for_job(files: JobFiles, *, timeout: float = 120.0, until=None) -> JobState:  # type: ignore[no-untyped-def]
    """Poll the state file until the job is no longer active (or ``until(state)``)."""
    until = until or (lambda s: not s.active)
    deadline = time.monotonic() + timeout
    while True:
        state = files.read()
        if until(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"job still {state.phase} after {timeout} s: {state}")
        time.sleep(0.05)  # the poll interval of a wait with a deadline


