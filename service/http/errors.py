"""Every error as a JSON body: the service's own shape, or OpenAI's under its paths."""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, TooManyRequestsException, ValidationException

from service.errors import CiteQAError, NotReadyError

__all__ = ["error_response", "openai_error"]

log = logging.getLogger(__name__)

_OPENAI_PATHS = ("/v1/chat/", "/v1/models")
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "not_found_error",
    429: "requests",
}
_OPENAI_CODES = {401: "invalid_api_key", 404: "not_found", 429: "rate_limit_exceeded",
                 503: "unavailable"}  # fmt: skip


def openai_error(
    status: int, message: str, extra: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """An error in OpenAI's shape: message, type, param and code."""
    param = next((str(e["key"]) for e in extra or [] if e.get("key")), None)
    if extra:
        message = "; ".join(f"{e.get('key', 'body')}: {e.get('message', message)}" for e in extra)
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {
        "error": {
            "message": message,
            "type": kind,
            "param": param,
            "code": _OPENAI_CODES.get(status),
        }
    }


def error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """Any exception as a JSON error with its status; unexpected ones are logged as 500s."""
    headers: dict[str, str] = {}
    if isinstance(exc, CiteQAError):
        status, detail, extra = exc.status_code, exc.message, None
        retry_after = getattr(exc, "retry_after_s", None)
        if retry_after is not None:  # busy, or still loading
            headers["Retry-After"] = str(retry_after)
        elif status >= 500 and not isinstance(exc, NotReadyError):
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
    elif isinstance(exc, HTTPException):
        status, detail, extra = exc.status_code, exc.detail, exc.extra
        headers.update(exc.headers or {})
        if isinstance(exc, ValidationException) and not extra:
            extra = [{"message": detail, "key": "body"}]
        if isinstance(exc, TooManyRequestsException):
            detail = "too many requests from this client; retry after the time Retry-After gives"
            headers.setdefault("Retry-After", headers.get("RateLimit-Reset", "60"))
    else:
        log.exception("%s %s crashed", request.method, request.url.path)
        status, detail, extra = 500, "internal error", None
    if request.url.path.startswith(_OPENAI_PATHS):
        error = openai_error(status, str(detail), extra if isinstance(extra, list) else None)
        return Response(error, status_code=status, media_type=MediaType.JSON, headers=headers)
    body: dict[str, Any] = {"status_code": status, "detail": detail}
    if extra:
        body["extra"] = extra
    return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)
