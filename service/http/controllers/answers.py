"""``/v1/ask`` and ``/v1/search``: answers with verified citations, and ranked sentences."""

from __future__ import annotations

import time
from typing import Any

from litestar import Controller, Request, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from litestar.response import ServerSentEvent

from service.answering import Scope
from service.errors import PayloadTooLargeError
from service.http.apidoc import errors
from service.http.dependencies import AccessDep, RuntimeDep, SettingsDep
from service.http.streaming import EventStream, ask_stream, while_connected
from service.observe import elapsed_ms
from service.schemas import AskRequest, AskResponse, SearchRequest, SearchResponse

__all__ = ["AnswersController"]


class AnswersController(Controller):
    """Questions and searches over the current index."""

    tags = ["answers"]  # noqa: RUF012 (Litestar reads it as a class attribute)

    @post("/ask", status_code=200,
          responses={200: ResponseSpec(AskResponse, description="answer")}
          | errors(400, 401, 413, 415, 502))  # fmt: skip
    async def ask(
        self,
        data: JSONBody[AskRequest],
        runtime: RuntimeDep,
        settings: SettingsDep,
        access: AccessDep,
        request: Request[Any, Any, Any],
    ) -> AskResponse | ServerSentEvent:
        """Answer a question with verified sentence citations, or abstain.

        With ``"stream": true`` the answer comes as Server-Sent Events: ``answer.delta``,
        ``citation`` (each once its claim is verified), ``error``, and a final ``done``
        holding exactly the non-streaming response. ``collections`` and ``filter`` narrow
        the documents asked (a key sees only its own collections); ``documents`` are asked
        instead of the index, narrowed by ``filter`` alone.
        """
        answerer = runtime.answerer
        answerer.check_capacity(data.answer_mode)
        if data.documents:  # the caller's own: no collection holds them
            given = sum(len(d.text) for d in data.documents)
            if given > settings.max_given_chars:
                raise PayloadTooLargeError(
                    f"documents: {given} characters; the limit is {settings.max_given_chars} "
                    "(CITEQA_MAX_GIVEN_CHARS): add larger documents with POST /v1/documents"
                )
            scope = None if data.filter is None else Scope(None, data.filter)
        else:
            scope = access.scope(data.collections, data.filter)
        if not data.stream:
            return await while_connected(
                request,
                answerer.ask(data.question, data.top_k, data.answer_mode, scope, data.documents),
            )
        return EventStream(ask_stream(answerer, data, scope))

    @post("/search", status_code=200, sync_to_thread=True, responses=errors(400, 401, 415))
    def search(
        self, data: JSONBody[SearchRequest], runtime: RuntimeDep, access: AccessDep
    ) -> SearchResponse:
        """Rank sentences and passages for a query, in ``collections`` and ``filter``."""
        started = time.perf_counter()
        scope = access.scope(data.collections, data.filter)
        reading = runtime.answerer.reading_of(data.query, scope)
        if scope is not None:
            reading = reading.scoped(scope)
        retriever = reading.retriever
        candidates = retriever.retrieve(data.query).candidates
        return SearchResponse(
            sentences=retriever.sentence_hits(candidates, data.top_k),
            passages=retriever.passages(candidates, data.top_k),
            timings_ms={"total": elapsed_ms(started)},
        )
