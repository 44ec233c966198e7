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
from litestar.exceptions import ValidationException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPScope, Message, Receive, ReceiveMessage, Scope, Send

from service.errors import BodyTimeoutError, InvalidRequestError
from service.observe import collecting, elapsed_ms

__all__ = ["BodyDeadline", "RequestLog", "check_json_body"]

_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Probes are logged at DEBUG, so that a scraper or an orchestrator does not fill the log.
_QUIET = ("/healthz", "/readyz", "/metrics")

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
    if request.method != "POST" or media.startswith(("multipart/", "text/")):
        return
    body = await request.body()
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(f"the body is not UTF-8 (byte {exc.start})") from None
    data = request.route_handler.parsed_fn_signature.parameters.get("data")
    kind = data.annotation if data is not None else Any
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
