"""Middleware and request hooks: request ids and logs, body deadlines, strict JSON bodies."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any, cast

import anyio
import msgspec
import structlog
from litestar import Request
from litestar.enums import ScopeType
from litestar.exceptions import TooManyRequestsException, ValidationException
from litestar.middleware import ASGIMiddleware, DefineMiddleware
from litestar.middleware.rate_limit import CacheObject, RateLimitConfig, RateLimitMiddleware
from litestar.types import ASGIApp, HTTPScope, Message, Receive, ReceiveMessage, Scope, Send

from service.errors import BodyTimeoutError, InvalidRequestError, UnsupportedMediaError
from service.http.errors import error_response
from service.observe import collecting, elapsed_ms

__all__ = ["BodyDeadline", "RateLimit", "RequestLog", "check_json_body", "rate_limit"]

_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Probes are logged at DEBUG, so that a scraper or an orchestrator does not fill the log.
_QUIET = ("/healthz", "/livez", "/readyz", "/metrics")

log = structlog.get_logger("citeqa.request")


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            given = value.decode("latin-1")
            if _SANE_ID.match(given):
                return given
    return uuid.uuid4().hex


class RequestLog(ASGIMiddleware):
    """Give each request an id and log one event when its response has been sent."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Run the request with its id bound, and log its summary."""
        request_id = _request_id(scope)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers") or [])
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        with collecting() as summary:
            try:
                await next_app(scope, receive, send_with_id)
            finally:
                _log(scope, request_id, status, started, summary)


class RateLimit(RateLimitMiddleware):
    """Litestar's limiter per client address, with three changes.

    Its 429 is answered here, inside the request log and the metrics, so that both record a
    429 and the response carries its ``X-Request-ID`` (raised, it was answered outside
    them). ``RateLimit-Reset`` is never below 0 (a long request outlived its window). And
    a request while the service is loading is not counted (``rate_limit``): its 503 tells
    the caller to come back, and must not use up the budget it comes back with.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Let the request through, or answer 429."""
        try:
            await super().__call__(scope, receive, send)
        except TooManyRequestsException as exc:
            request: Request[Any, Any, Any] = scope["litestar_app"].request_class(scope)
            response = error_response(request, exc).to_asgi_response(None, request)
            await response(scope, receive, send)

    def create_response_headers(self, cache_object: CacheObject) -> dict[str, str]:
        """The RateLimit headers, the reset counted from now and never negative."""
        headers = super().create_response_headers(cache_object)
        key = self.config.rate_limit_reset_header_key
        headers[key] = str(max(int(headers[key]), 0))
        return headers


async def _loaded(request: Request[Any, Any, Any]) -> bool:
    return request.app.state.life.runtime is not None


def rate_limit(per_minute: int) -> DefineMiddleware:
    """``per_minute`` requests per client address; probes, metrics and the page never count."""
    return RateLimitConfig(
        rate_limit=("minute", per_minute),
        exclude=["^/$", "^/static/", "^/healthz", "^/livez", "^/readyz", "^/metrics", "^/schema"],
        check_throttle_handler=_loaded,
        middleware_class=RateLimit,
    ).middleware


def _log(
    scope: Scope, request_id: str, status: int, started: float, summary: dict[str, Any]
) -> None:
    route = scope.get("path_template") or scope["path"]
    level = logging.DEBUG if route in _QUIET and status < 400 else logging.INFO
    log.log(
        level,
        "request",
        request_id=request_id,
        method=cast("HTTPScope", scope)["method"],
        route=route,
        status=status,
        latency_ms=elapsed_ms(started),
        **{k: v for k, v in summary.items() if v is not None},
    )
    structlog.contextvars.unbind_contextvars("request_id")


class BodyDeadline(ASGIMiddleware):
    """A request body must arrive within ``seconds``; a stalled one gets a 408.

    Only the body is timed: once it is complete, ``receive`` waits for a disconnect, as
    long as the response takes.
    """

    scopes = (ScopeType.HTTP,)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Run the request with a receive that times the body."""
        complete = False

        async def timed_receive() -> ReceiveMessage:
            nonlocal complete
            if complete:
                return await receive()
            try:
                with anyio.fail_after(self.seconds):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeoutError() from None
            complete = message["type"] != "http.request" or not message.get("more_body")
            return message

        await next_app(scope, timed_receive, send)


async def check_json_body(request: Request[Any, Any, Any]) -> None:
    """Validate a JSON body strictly against the handler's type, with a 400 naming the field.

    Litestar's own parsing converts ``"5"`` to 5 and ``0`` to false, names the whole body
    instead of the field, and lets UnicodeDecodeError or RecursionError through as 500s.
    """
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    data = request.route_handler.parsed_fn_signature.parameters.get("data")
    if request.method != "POST" or data is None:
        return  # not a JSON route: /v1/documents reads its own bodies, text and files too
    if media and media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaError(
            f"the body must be JSON (Content-Type: application/json), not {media}"
        )
    body = await request.body()
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(f"the body is not UTF-8 (byte {exc.start})") from None
    kind = data.annotation
    try:
        raw = msgspec.json.decode(body)
    except RecursionError:
        raise InvalidRequestError("the JSON body nests too deeply") from None
    except msgspec.DecodeError:
        return  # malformed JSON is reported by the handler's own parsing
    try:
        msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        raise ValidationException(
            f"invalid request body: {exc}",
            extra=[{"key": _field_of(str(exc)), "message": str(exc), "source": "body"}],
        ) from None


_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_FIELD = re.compile(r"field `(?P<name>[^`]+)`")


def _field_of(message: str) -> str:
    """The field a msgspec validation message is about, as a dotted path ("body" for all)."""
    at, field = _AT.search(message), _FIELD.search(message)
    parts = [p for p in (at and at["path"], field and field["name"]) if p]
    return ".".join(parts) or "body"
