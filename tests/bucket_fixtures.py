"""Fixtures for the bucket tests: a real S3 server's bucket and an app that uses it.

Test modules register them with ``pytest_plugins = ["tests.bucket_fixtures"]``.
"""

from __future__ import annotations

import uuid

import pytest
from minio import Minio

from app.gallery.storage import connect_minio
from tests.s3server import S3Server


@pytest.fixture
def s3(s3_server: S3Server) -> Minio:
    return connect_minio(
        s3_server.endpoint,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        timeout=10,
    )


@pytest.fixture
def bucket(s3: Minio) -> str:
    name = f"photos-{uuid.uuid4().hex[:10]}"
    s3.make_bucket(name)
    return name


@pytest.fixture
def bucket_app(make_app, s3_server: S3Server):  # type: ignore[no-untyped-def]
    """An app whose S3 endpoint is the test server; its own images stay in a local folder."""

    def make(**overrides):  # type: ignore[no-untyped-def]
        return make_app(
            S3_ENDPOINT=s3_server.endpoint,
            S3_ACCESS_KEY=s3_server.access_key,
            S3_SECRET_KEY=s3_server.secret_key,
            STORAGE_TIMEOUT=10.0,
            **overrides,
        )

    return make
