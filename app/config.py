"""Configuration: defaults in classes, deployment settings from LOOKALIKE_* variables.

``create_app`` loads ``Config``, then the environment (``LOOKALIKE_MODEL`` sets
``MODEL``, values parsed as JSON where they can be), then the mapping or class
it was given, so tests stay hermetic whatever the developer's shell exports.
"""

from __future__ import annotations

DEV_SECRET_KEY = "dev-only-not-secret"


class Config:
    """Embedded defaults: Milvus Lite and a local image folder under instance/."""

    SECRET_KEY = DEV_SECRET_KEY
    # The encoder: an HF hub id or a local model directory (e.g. a trainer export).
    MODEL = "facebook/dinov2-small"
    DEVICE = ""  # "" = CUDA when available, else CPU
    BF16 = None  # None = on where the hardware has fast bf16; False to force fp32
    THREADS = 0  # torch CPU threads; 0 = torch's default
    BATCH_SIZE = 32
    # Milvus: "" = a Milvus Lite database at instance/milvus.db, shared through a
    # local Lite server; or a server URI such as http://milvus:19530.
    MILVUS_URI = ""
    MILVUS_TOKEN = ""
    MILVUS_TIMEOUT = 10.0
    COLLECTION = "gallery"
    HNSW_M = 16
    HNSW_EF_CONSTRUCTION = 200
    SEARCH_EF = 128
    # Images: "" = instance/images, a folder path, or s3://bucket[/prefix] (MinIO).
    STORAGE = ""
    S3_ENDPOINT = ""
    S3_ACCESS_KEY = ""
    S3_SECRET_KEY = ""
    S3_SECURE = False
    S3_REGION = ""
    STORAGE_TIMEOUT = 5.0
    # Limits, in one place.
    MAX_CONTENT_LENGTH = 20 * 1024 * 1024  # bytes per request (Flask answers 413)
    MAX_IMAGE_PIXELS = 50_000_000  # refused from the header, before decoding
    DEFAULT_K = 10
    MAX_K = 100
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"


class TestConfig(Config):
    TESTING = True
    WTF_CSRF_ENABLED = False
    BF16 = False


class ProductionConfig(Config):
    SESSION_COOKIE_SECURE = True
