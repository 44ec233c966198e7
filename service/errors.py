"""The service's exceptions, and the one HTTP status each maps to.

CiteQAError
├── InvalidRequestError        400  input the schema cannot express as wrong
├── NotFoundError              404  unknown document
├── BodyTimeoutError           408  the request body did not arrive in time
├── ClientGoneError            499  the client left before its answer; the work was cancelled
├── NotReadyError              503  index or LLM still loading
├── BusyError                  503  the LLM queue is full; Retry-After says when to come back
├── IndexLoadError             500  index missing, corrupt or incompatible
├── IndexWriteError            500  a write failed; the previous snapshot stays live
│   └── InsufficientStorageError 507  … because the disk is full
└── LLMError                   502  upstream chat model failed
    ├── LLMUnavailableError         could not connect, or 5xx after retries
    └── ModelUnavailableError       embedded model cannot be assembled or loaded
"""

from __future__ import annotations

__all__ = [
    "BodyTimeoutError",
    "BusyError",
    "CiteQAError",
    "ClientGoneError",
    "ForbiddenError",
    "IndexLoadError",
    "IndexWriteError",
    "InsufficientStorageError",
    "InvalidRequestError",
    "LLMError",
    "LLMUnavailableError",
    "ModelUnavailableError",
    "NotFoundError",
    "NotReadyError",
    "PayloadTooLargeError",
    "ShardUnavailableError",
]


class CiteQAError(Exception):
    """Base of every error the service raises on purpose."""

    status_code = 500
    public_message = "internal error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.public_message)
        self.message = message or self.public_message


class InvalidRequestError(CiteQAError):
    """The request is well-formed but cannot be served as asked."""

    status_code = 400


class UnsupportedFileError(CiteQAError):
    """An upload whose bytes are no kind of file that is read here, or not what its name says."""

    status_code = 415


class UnsupportedMediaError(UnsupportedFileError):
    """A JSON route sent a body of another media type."""


class UnreadableFileError(CiteQAError):
    """A file of a kind that is read here that gives no text: encrypted, scanned, damaged."""

    status_code = 422


class ForbiddenError(CiteQAError):
    """The operation is disabled by configuration."""

    status_code = 403


class PayloadTooLargeError(CiteQAError):
    """A document, batch or body exceeds its limit."""

    status_code = 413


class NotFoundError(CiteQAError):
    """A named resource does not exist."""

    status_code = 404


class BodyTimeoutError(CiteQAError):
    """The client sent part of a body and then stalled."""

    status_code = 408
    public_message = "the request body did not arrive in time"


class ClientGoneError(CiteQAError):
    """The client disconnected; its answer was cancelled, upstream call included."""

    status_code = 499
    public_message = "the client closed the request"


class NotReadyError(CiteQAError):
    """The index or the LLM is still loading (``retry_after_s``), or failed to (None)."""

    status_code = 503
    public_message = "service is starting; retry shortly"

    def __init__(self, message: str | None = None, *, retry_after_s: int | None = 10) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class IndexLoadError(CiteQAError):
    """The persisted index is missing, corrupt, or built for another model."""

    status_code = 500


class IndexWriteError(CiteQAError):
    """A document write could not be made durable; nothing was changed."""

    status_code = 500


class InsufficientStorageError(IndexWriteError):
    """The disk is full."""

    status_code = 507


class LLMError(CiteQAError):
    """The chat model failed to answer."""

    status_code = 502
    public_message = "the language model failed to answer"


class LLMUnavailableError(LLMError):
    """The chat model could not be reached, or kept failing after retries."""


class ModelUnavailableError(LLMError):
    """The embedded model cannot be assembled or loaded."""


class ShardUnavailableError(CiteQAError):
    """A shard did not take its part of a write; the other shards' parts stay written."""

    status_code = 503
    retry_after_s = 10


class BusyError(CiteQAError):
    """Too many questions wait for the LLM; the client should retry after ``retry_after_s``."""

    status_code = 503
    public_message = "the service is busy answering other questions; retry shortly"
    retry_after_s = 5
