"""S3 client errors on a bucket source turned into domain errors, without secrets."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import urllib3
from minio.error import InvalidResponseError, S3Error, ServerError

from app.exceptions import NotFound, StorageUnavailable
from app.gallery.storage import _reason

MISSING_OBJECT = ("NoSuchKey", "NoSuchObject")


@contextmanager
def s3_errors(where: str) -> Iterator[None]:
    """A missing object is NotFound; a missing bucket, a refusal or an outage is a 503."""
    try:
        yield
    except S3Error as exc:
        if exc.code in MISSING_OBJECT:
            raise NotFound(f"{where} is not in its bucket any more.") from exc
        if exc.code == "NoSuchBucket":
            raise StorageUnavailable(f"The bucket of {where} does not exist.") from exc
        raise StorageUnavailable(
            f"The S3 server refused {where} ({exc.code}); check the "
            "access key and the bucket's permissions."
        ) from exc
    except ServerError as exc:
        raise StorageUnavailable(
            f"The S3 server failed on {where} with HTTP {exc.status_code}."
        ) from exc
    except InvalidResponseError as exc:
        raise StorageUnavailable(
            f"The S3 server for {where} did not answer as S3 does; check the endpoint."
        ) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise StorageUnavailable(
            f"The S3 server for {where} is unreachable: {_reason(exc)}."
        ) from exc
