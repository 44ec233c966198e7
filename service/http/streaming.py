"""Answers over SSE, and work that stops when its client goes away."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from contextlib import aclosing
from typing import Any, TypeVar

import anyio
import anyio.abc
import msgspec
from litestar import Request
from litestar.response import ServerSentEvent, ServerSentEventMessage

from service.answering import AnswerDelta, Answerer, AskEvent, CitationFound, Scope, StreamFailed
from service.errors import CiteQAError, ClientGoneError
from service.http.errors import openai_error
from service.http.wire import ChatCompletionChunk
from service.schemas import AskRequest

__all__ = ["EventStream", "ask_stream", "openai_stream", "while_connected"]

_T = TypeVar("_T")


async def while_connected(request: Request[Any, Any, Any], work: Awaitable[_T]) -> _T:
    """Await ``work`` unless the client disconnects first; then it is cancelled.

    A streamed answer stops when its stream is closed; this gives a non-streamed one the
    same: the LLM call behind a question nobody waits for is closed, not left running.
    """
    result: list[_T] = []
    failure: list[Exception] = []

    async def watch(group: anyio.abc.TaskGroup) -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        group.cancel_scope.cancel()

    async with anyio.create_task_group() as group:
        group.start_soon(watch, group)
        try:
            result.append(await work)
        except Exception as exc:
            failure.append(exc)
        group.cancel_scope.cancel()
    if failure:
        raise failure[0]
    if not result:
        raise ClientGoneError()
    return result[0]


class EventStream(ServerSentEvent):
    """An SSE response that keeps its content type under a handler that also returns JSON.

    Litestar 2 lets the handler's inferred media type (JSON, from the union return
    type) win over the response's own ``text/event-stream``.
    """

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> Any:
        """The ASGI response, as ``text/event-stream`` whatever the handler declared."""
        kwargs["media_type"] = "text/event-stream"
        return super().to_asgi_response(*args, **kwargs)


async def ask_stream(
    answerer: Answerer, data: AskRequest, scope: Scope | None
) -> AsyncIterator[ServerSentEventMessage]:
    """An answer's events as SSE messages; an error after the start is an ``error`` event."""
    # aclosing: a client that disconnects closes the chain down to the upstream request.
    events_of = answerer.ask_events(
        data.question, data.top_k, data.answer_mode, scope, data.documents
    )
    async with aclosing(events_of) as events:
        try:
            async for event in events:
                yield _sse(event)
        except CiteQAError as exc:
            yield ServerSentEventMessage(event="error", data=_json({"message": exc.message}))


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def _sse(event: AskEvent) -> ServerSentEventMessage:
    if isinstance(event, AnswerDelta):
        return ServerSentEventMessage(event="answer.delta", data=_json({"text": event.text}))
    if isinstance(event, CitationFound):
        body = {"number": event.number, **msgspec.to_builtins(event.citation)}
        return ServerSentEventMessage(event="citation", data=_json(body))
    if isinstance(event, StreamFailed):
        return ServerSentEventMessage(event="error", data=_json({"message": event.message}))
    return ServerSentEventMessage(event="done", data=_json(event.response))


async def openai_stream(
    chunks: AsyncGenerator[ChatCompletionChunk, None],
) -> AsyncIterator[ServerSentEventMessage]:
    """OpenAI chunks as SSE ``data:`` lines, an error in OpenAI's shape, then ``[DONE]``."""
    async with aclosing(chunks) as stream:
        try:
            async for chunk in stream:
                yield ServerSentEventMessage(data=_json(chunk))
        except CiteQAError as exc:
            yield ServerSentEventMessage(data=_json(openai_error(exc.status_code, exc.message)))
    yield ServerSentEventMessage(data="[DONE]")
