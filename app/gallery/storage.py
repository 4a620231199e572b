"""The image store: gallery originals and their thumbnails, on disk or in S3/MinIO.

Objects are named by content hash, ``images/<sha256>.<ext>`` and
``thumbs/<sha256>.jpg``, and every name is checked
against exactly those patterns before it touches a folder or a bucket, so nothing
from a request can reach another file. Failures become :class:`StorageUnavailable`
(naming the store, never its credentials); short timeouts and one retry let a dead
server cost seconds and a revived one be used again without a restart.
"""

from __future__ import annotations

import io
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TypeVar

import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError
from urllib3.util import Retry, Timeout

from app.exceptions import BadRequest, NotFound, StorageUnavailable
from app.files import atomic_write
from app.gallery.keys import ORIGINALS, THUMBS, is_stored_name

# Config-given S3 key prefixes: plain path segments, never "." or "..".
_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_BUCKET_PATTERN = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_BUCKET_READY_CODES = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}

T = TypeVar("T")


class ImageStore(Protocol):
    """What the app needs from wherever images live."""

    backend: str  # "local" or "s3"
    description: str  # where the images are, safe to show (no secrets)

    def put(self, name: str, data: bytes, content_type: str) -> None: ...
    def get(self, name: str) -> bytes: ...
    def exists(self, name: str) -> bool: ...
    def delete(self, name: str) -> None: ...
    def names(self, prefix: str = ORIGINALS) -> Iterator[str]: ...
    def ping(self) -> None: ...


def check_name(name: str) -> str:
    """Return ``name`` if it is an original's or a thumbnail's name, else refuse it."""
    if not is_stored_name(name):
        raise BadRequest("This is not the name of a stored image.")
    return name


def _check_prefix(prefix: str) -> str:
    if prefix not in (ORIGINALS, THUMBS):
        raise BadRequest(f"Images can only be listed under {ORIGINALS!r} or {THUMBS!r}.")
    return prefix


class LocalStore:
    """Images in a folder: the embedded default, one file per object."""

    backend = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.description = f"local:{self.root}"

    def put(self, name: str, data: bytes, content_type: str) -> None:
        """Write atomically (temporary file + rename): readers never see half a file."""
        path = self.root / check_name(name)
        with self._errors("is not writable"):
            atomic_write(path, data)

    def get(self, name: str) -> bytes:
        path = self.root / check_name(name)
        with self._errors("cannot be read"):
            try:
                return path.read_bytes()
            except FileNotFoundError as exc:
                raise NotFound("This image is not in the store.") from exc

    def exists(self, name: str) -> bool:
        path = self.root / check_name(name)
        with self._errors("cannot be read"):
            try:
                return stat.S_ISREG(path.stat().st_mode)
            except FileNotFoundError:
                return False

    def delete(self, name: str) -> None:
        path = self.root / check_name(name)
        with self._errors("is not writable"):
            path.unlink(missing_ok=True)

    def names(self, prefix: str = ORIGINALS) -> Iterator[str]:
        """Stream stored names; stray files (temporaries, notes) are skipped."""
        folder = self.root / _check_prefix(prefix)
        with self._errors("cannot be read"):
            if not folder.is_dir():
                return
            with os.scandir(folder) as entries:
                for entry in entries:
                    name = prefix + entry.name
                    if is_stored_name(name) and entry.is_file():
                        yield name

    def ping(self) -> None:
        """Check that the folder exists (creating it) and that we can write there."""
        with self._errors("is not writable"):
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.root):
                pass

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turn OS errors (read-only or full disk, a file where a folder should be) into 503s."""
        try:
            yield
        except OSError as exc:
            raise StorageUnavailable(
                f"The image store folder {self.root} {what}: {exc.strerror or exc}."
            ) from exc


def connect_minio(
    endpoint: str,
    *,
    access_key: str | None,
    secret_key: str | None,
    secure: bool = False,
    region: str | None = None,
    timeout: float = 5.0,
) -> Minio:
    """A MinIO client that gives up within seconds when the server is gone.

    The client's default pool waits five minutes and retries five times; ours
    tries twice with ``timeout`` seconds per attempt, so a request fails fast
    and the next one after the server's return simply succeeds. Retrying
    once also covers a pooled connection that the server dropped on restart.
    """
    http = urllib3.PoolManager(
        timeout=Timeout(connect=timeout, read=timeout),
        retries=Retry(
            total=1,
            backoff_factor=0.2,
            status_forcelist=(500, 502, 503, 504),
            raise_on_status=False,  # let minio read the last answer and explain it
        ),
        maxsize=10,
    )
    return Minio(
        endpoint,
        access_key=access_key,
        secret_key=secret_key,
        secure=secure,
        region=region,
        http_client=http,
    )


class MinioStore:
    """Images in an S3 bucket (MinIO in production), under an optional key prefix.

    The bucket is created on first use rather than here, so an app can start
    while the server is still down; until creation succeeds every call tries
    again.
    """

    backend = "s3"

    def __init__(self, client: Minio, bucket: str, prefix: str = "", *, endpoint: str = "") -> None:
        if not _BUCKET_PATTERN.fullmatch(bucket):
            raise ValueError(f"{bucket!r} is not a valid S3 bucket name.")
        self.client = client
        self.bucket = bucket
        self.prefix = _normalize_prefix(prefix)
        where = f" @ {endpoint}" if endpoint else ""
        self.description = f"s3://{bucket}/{self.prefix}{where}"
        self._bucket_ready = False

    def put(self, name: str, data: bytes, content_type: str) -> None:
        key = self.prefix + check_name(name)
        self._call(
            lambda: self.client.put_object(
                self.bucket, key, io.BytesIO(data), len(data), content_type=content_type
            )
        )

    def get(self, name: str) -> bytes:
        key = self.prefix + check_name(name)
        return self._call(lambda: self._read(key))

    def exists(self, name: str) -> bool:
        key = self.prefix + check_name(name)
        try:
            self._call(lambda: self.client.stat_object(self.bucket, key))
        except NotFound:
            return False
        return True

    def delete(self, name: str) -> None:
        """Delete an object; S3 already treats a missing one as deleted."""
        key = self.prefix + check_name(name)
        self._call(lambda: self.client.remove_object(self.bucket, key))

    def names(self, prefix: str = ORIGINALS) -> Iterator[str]:
        """Stream stored names page by page, without this store's key prefix."""
        listing = self.prefix + _check_prefix(prefix)
        self._call(lambda: None)  # make sure the bucket exists, or fail clearly
        with self._errors():
            for item in self.client.list_objects(self.bucket, prefix=listing, recursive=True):
                name = item.object_name[len(self.prefix) :]
                if is_stored_name(name):
                    yield name

    def ping(self) -> None:
        """Reach the server (always, even once the bucket is known) and ensure the bucket."""
        self._bucket_ready = False
        self._call(lambda: None)

    def _read(self, key: str) -> bytes:
        response = self.client.get_object(self.bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def _call(self, action: Callable[[], T]) -> T:
        """Run ``action`` once the bucket exists; recreate it if it vanished meanwhile."""
        with self._errors():
            self._ensure_bucket()
            try:
                return action()
            except S3Error as exc:
                if exc.code != "NoSuchBucket":
                    raise
                self._bucket_ready = False
                self._ensure_bucket()
                return action()

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        if not self.client.bucket_exists(self.bucket):
            try:
                self.client.make_bucket(self.bucket)
            except S3Error as exc:  # another worker may have just made it
                if exc.code not in _BUCKET_READY_CODES:
                    raise
        self._bucket_ready = True

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Translate client and network errors into domain errors, without secrets."""
        try:
            yield
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                raise NotFound("This image is not in the store.") from exc
            raise StorageUnavailable(
                f"The image store at {self.description} refused the request ({exc.code}); "
                "check its access key and the bucket's permissions."
            ) from exc
        except ServerError as exc:
            raise StorageUnavailable(
                f"The image store at {self.description} failed with HTTP {exc.status_code}."
            ) from exc
        except InvalidResponseError as exc:
            raise StorageUnavailable(
                f"The image store at {self.description} gave an answer that is not S3's; "
                "check the endpoint."
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageUnavailable(
                f"The image store at {self.description} is unreachable: {_reason(exc)}. "
                "Check that the server is running; the next request will try again."
            ) from exc


def _normalize_prefix(prefix: str) -> str:
    """``"a/b/"``, ``"/a/b"`` and ``"a/b"`` all mean ``"a/b/"``; ``""`` means the bucket root."""
    segments = [part for part in prefix.strip("/").split("/") if part]
    for part in segments:
        if not _PREFIX_SEGMENT.fullmatch(part) or part in (".", ".."):
            raise ValueError(f"{prefix!r} is not a valid S3 key prefix.")
    return "".join(f"{part}/" for part in segments)


def _reason(exc: BaseException) -> str:
    """The short cause of a network error ("Connection refused"), not urllib3's essay."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        if isinstance(seen, urllib3.exceptions.ReadTimeoutError):
            return "no answer in time"
        reason = getattr(seen, "reason", None)
        seen = reason if isinstance(reason, BaseException) else (seen.__cause__ or seen.__context__)
    return type(exc).__name__


def open_store(
    spec: str | None,
    *,
    instance_path: Path,
    endpoint: str | None,
    access_key: str | None,
    secret_key: str | None,
    secure: bool = False,
    region: str | None = None,
    timeout: float = 5.0,
) -> ImageStore:
    """Build the store a config names: a folder path, or ``s3://bucket[/prefix]``.

    Nothing is contacted here, so the app starts even while S3 is down.
    Relative folders live under the Flask instance folder.
    """
    if spec and spec.startswith("s3://"):
        bucket, _, prefix = spec.removeprefix("s3://").partition("/")
        if not endpoint:
            raise ValueError(f"The image store {spec} needs an S3 endpoint (host:port).")
        host, secure = _split_endpoint(endpoint, secure)
        client = connect_minio(
            host,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            timeout=timeout,
        )
        scheme = "https" if secure else "http"
        return MinioStore(client, bucket, prefix, endpoint=f"{scheme}://{host}")
    root = Path(spec).expanduser() if spec else Path("images")
    return LocalStore(root if root.is_absolute() else Path(instance_path) / root)


def _split_endpoint(endpoint: str, secure: bool) -> tuple[str, bool]:
    """Accept ``host:port`` or a URL; a URL's scheme decides ``secure``."""
    for scheme, is_secure in (("https://", True), ("http://", False)):
        if endpoint.startswith(scheme):
            return endpoint.removeprefix(scheme).rstrip("/"), is_secure
    return endpoint.rstrip("/"), secure
