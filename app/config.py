"""Configuration: defaults in classes, deployment settings from LOOKALIKE_* variables.

``create_app`` loads ``Config``, then the environment (``LOOKALIKE_MODEL`` sets
``MODEL``, values parsed as JSON where they can be), then the mapping or class
it was given, so tests stay hermetic whatever the developer's shell exports.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

DEV_SECRET_KEY = "dev-only-not-secret"
DEFAULT_MODEL = "facebook/dinov2-small"  # the encoder when LOOKALIKE_MODEL is not set


class Config:
    """Embedded defaults: Milvus Lite and a local image folder under instance/."""

    SECRET_KEY = DEV_SECRET_KEY
    # The encoder: an HF hub id or a local model directory (e.g. a trainer export).
    MODEL = DEFAULT_MODEL
    DEVICE = ""  # "" = CUDA when available, else CPU
    # auto = bf16 weights where the hardware has fast bf16 (AVX512-BF16/AMX, Ampere+),
    # else fp32; or fp32, bf16, bf16-autocast. (BF16, deprecated: see resolve_aliases.)
    PRECISION = "auto"
    COMPILE = False  # torch.compile the model (slower start; see BENCHMARKS.md)
    THREADS = 0  # torch CPU threads; 0 = torch's default
    BATCH_SIZE = 0  # images per model call; 0 = the device's best (8 on CPU, 64 on CUDA)
    # What runs the model on the CPU: torch, openvino, onnxruntime, or auto = the one
    # fastest in a timed trial here for this model (never slower than torch; torch when the
    # others are not installed). Exports are cached in ENCODER_EXPORT_DIR
    # ("" = instance/encoder-exports). See docs/performance-backends.md.
    ENCODER_BACKEND = "auto"
    ENCODER_EXPORT_DIR = ""
    # Milvus: "" = the embedded default, a local Milvus standalone server with its data
    # in instance/milvus (started on demand, loopback only; docs/milvus.md); a path =
    # a Milvus Lite database there (say milvus.db, under instance/); or a server URI
    # such as http://milvus:19530.
    MILVUS_URI = ""
    MILVUS_SERVER = ""  # the embedded default's milvus-server; "" = .venv-milvus's
    MILVUS_TOKEN = ""
    MILVUS_TIMEOUT = 10.0
    # A folder a Milvus server reads, as the server sees it: --ray ingests bulk-import
    # Parquet files from there (docs/scale.md); "" = batched upserts.
    MILVUS_IMPORT_DIR = ""
    RAY_ADDRESS = ""  # --ray with no address: this Ray cluster ("" = a local Ray for the run)
    RAY_ACTORS = 0  # model actors of a --ray run; 0 = one per GPU, or one on CPUs
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
    # Galleries indexed in place from a bucket (docs/buckets.md). More S3 servers by name:
    # {"archive": {"endpoint": "host:9000", "access_key": "...", "secret_key": "..."}}.
    S3_ENDPOINTS: dict = {}  # noqa: RUF012 - read only
    # /images/<key> of an in-place image: "stream" relays it through the app; "redirect"
    # sends the browser a presigned URL valid this many seconds (bucket reachable by it).
    S3_SERVE = "stream"
    S3_PRESIGN_SECONDS = 300
    # The token MinIO's webhook sends to POST /api/hooks/s3: "" turns the hook off;
    # "sha256:<hex>" keeps only its hash in the configuration.
    S3_WEBHOOK_TOKEN = ""
    # Limits, in one place.
    MAX_CONTENT_LENGTH = 20 * 1024 * 1024  # bytes per request (Flask answers 413)
    MAX_IMAGE_PIXELS = 50_000_000  # refused from the header, before decoding
    DEFAULT_K = 10
    MAX_K = 100
    LABELS_CACHE_SECONDS = 300.0  # label counts per collection; uploads show up after this
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    PRODUCTION = False
    PROXY_FIX = 0  # reverse proxies in front whose X-Forwarded-* to trust (1 behind nginx)
    # Admin (/admin): one account. Make the hash with `flask --app wsgi admin
    # hash-password`. Without one, the embedded default generates a password once,
    # prints it, and keeps only its hash in instance/admin-password.hash;
    # ProductionConfig refuses to start instead.
    ADMIN_USER = "admin"
    ADMIN_PASSWORD_HASH = ""
    ADMIN_ONE_TIME_PASSWORD = True
    ADMIN_LOGIN_ATTEMPTS = 5  # failed logins per user and IP (per worker process) ...
    ADMIN_LOGIN_WINDOW = 300  # ... within this many seconds, then 429 until they age out
    ADMIN_SESSION_HOURS = 12  # a login lasts this long, then the admin logs in again
    ADMIN_PAGE_SIZE = 48  # thumbnails per gallery page
    # Reindex: each worker re-reads the serving alias at most this often (seconds),
    # so it follows a switch to a new collection (and its model) within that time.
    ALIAS_CHECK_SECONDS = 2.0
    REINDEX_NICE = 10  # the background reindex yields the CPU to searches
    # Copies (docs/duplicates.md): gallery images a calibration copies and scores (a
    # reindex and `index calibrate` run it), and whether ingest refuses an image
    # above the copy threshold of an image already in the gallery.
    COPY_CALIBRATION_SAMPLE = 200
    REJECT_COPIES = False
    # The JSON API (docs/api.md): keys, rate limits, load shedding.
    SEARCH_REQUIRES_KEY = False  # true: /api/search needs a search (or manage) key
    API_KEYS_COLLECTION = "lookalike_api_keys"  # the Milvus collection of the hashed keys
    API_KEY_CACHE_SECONDS = 5.0  # a revoked key stops working within this time
    API_KEY_TOUCH_SECONDS = 60.0  # "last used" is written at most this often per key
    API_PAGE_SIZE = 100  # default images per GET /api/images page (at most 1000)
    # Rate-limit counters: "" = a SQLite file in instance/ shared by the host's
    # workers; or a `limits` storage URI such as redis://host:6379 for several hosts.
    RATELIMIT_STORAGE = ""
    RATELIMIT_SEARCH = "50/second"  # per key (or client address without one); "" = none
    RATELIMIT_MANAGE = "10/second"
    # A search is refused at once (503 + Retry-After) when those already waiting for
    # this worker's model would take longer than this to serve; 0 = never.
    SHED_AFTER_SECONDS = 5.0
    # Several web servers (docs/deploy.md): "" keeps job state, locks, login limits and
    # the audit log under instance/ (one machine); redis://host:6379/0 keeps them in Redis.
    REDIS_URL = ""
    REDIS_PREFIX = "lookalike"  # key prefix, so deployments may share one Redis
    REDIS_TIMEOUT = 5.0
    REDIS_LEASE_SECONDS = 30.0  # a lock whose holder stopped renewing lapses after this
    # ProductionConfig with a Milvus server on another host and no Redis refuses to start
    # unless this says there is only one web server.
    SINGLE_HOST = False


class TestConfig(Config):
    TESTING = True
    WTF_CSRF_ENABLED = False
    RATELIMIT_SEARCH = ""  # tests send bursts; the rate-limit tests set their own
    RATELIMIT_MANAGE = ""
    PRECISION = "fp32"
    ENCODER_BACKEND = "torch"
    # A job run in-process (the CLI runner) would lower the whole test process's
    # priority for good, and every server it starts after that.
    REINDEX_NICE = 0


class ProductionConfig(Config):
    """For deployments (LOOKALIKE_CONFIG=production): refuses to start without secrets."""

    PRODUCTION = True
    SESSION_COOKIE_SECURE = True
    ADMIN_ONE_TIME_PASSWORD = False  # LOOKALIKE_ADMIN_PASSWORD_HASH is required


CONFIGS: dict[str, type[Config]] = {
    "": Config, "default": Config, "development": Config,
    "production": ProductionConfig, "test": TestConfig,
}


def resolve_aliases(config: dict[str, Any]) -> None:
    """Map deprecated settings onto their replacements, in place.

    ``BF16`` (``LOOKALIKE_BF16``) was a second knob for the precision: true means
    ``PRECISION=bf16``, false ``PRECISION=fp32``; it wins over ``PRECISION``, as it did.
    """
    bf16 = config.pop("BF16", None)
    if bf16 is not None:
        log.warning("LOOKALIKE_BF16 is deprecated; use LOOKALIKE_PRECISION=%s",
                    "bf16" if bf16 else "fp32")
        config["PRECISION"] = "bf16" if bf16 else "fp32"


def config_class(name: str) -> type[Config]:
    """The config class named by LOOKALIKE_CONFIG (default, production or test)."""
    try:
        return CONFIGS[name.strip().lower()]
    except KeyError:
        raise SystemExit(
            f"LOOKALIKE_CONFIG={name!r} is not one of {', '.join(sorted(k for k in CONFIGS if k))}."
        ) from None
