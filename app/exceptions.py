"""Domain errors: raised by services and adapters, turned into responses in app.errors.

Each carries a message written for the person who will read it, and the HTTP
status it maps to, so that one handler can render all of them.
"""

from __future__ import annotations


class LookalikeError(Exception):
    """Base of every error we expect and explain to users."""

    status = 500
    title = "Something went wrong"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidImage(LookalikeError):
    status = 400
    title = "Not a readable image"


class UnsupportedImage(InvalidImage):
    title = "Unsupported image format"


class ImageTooLarge(InvalidImage):
    status = 413
    title = "Image too large"


class BadRequest(LookalikeError):
    status = 400
    title = "Bad request"


class NotFound(LookalikeError):
    status = 404
    title = "Not found"


class ServiceUnavailable(LookalikeError):
    status = 503
    title = "Service unavailable"


class VectorStoreUnavailable(ServiceUnavailable):
    title = "Search index unavailable"


class StorageUnavailable(ServiceUnavailable):
    title = "Image storage unavailable"


class CollectionMismatch(ServiceUnavailable):
    """The collection was built by another model: its vectors are not comparable."""

    title = "Search index built with another model"


class ModelLoadError(ServiceUnavailable):
    title = "Model could not be loaded"


class UnknownGallery(NotFound):
    """A gallery name that is not in the registry; carries the known ones for the reply."""

    title = "Unknown gallery"

    def __init__(self, message: str, *, known: list[str]) -> None:
        super().__init__(message)
        self.known = known


class Unauthorized(LookalikeError):
    """No API key, or one that is unknown or revoked."""

    status = 401
    title = "API key required"
    headers = {"WWW-Authenticate": 'Bearer realm="lookalike"'}


class Forbidden(LookalikeError):
    """A valid API key whose scope does not cover the call."""

    status = 403
    title = "Not allowed for this key"


class TooManyRequests(LookalikeError):
    status = 429
    title = "Too many requests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(max(1, retry_after))}


class Overloaded(ServiceUnavailable):
    """More searches wait for the model than it can serve within the shedding bound."""

    title = "Busy"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(max(1, retry_after))}


class RayUnavailable(LookalikeError):
    status = 503
    title = "Ray is not installed"
