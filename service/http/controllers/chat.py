"""``/v1/models`` and ``/v1/chat/completions``: the OpenAI-compatible chat, citations kept."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from litestar.response import ServerSentEvent

from service.answering import is_frontend_task, run_task, standalone_question
from service.errors import NotFoundError
from service.http.access import Access
from service.http.apidoc import errors
from service.http.dependencies import AccessDep, RuntimeDep, SettingsDep
from service.http.streaming import EventStream, openai_stream, while_connected
from service.http.wire import (
    ChatCompletion,
    ChatCompletionRequest,
    ModelList,
    SourceCards,
    chat_chunks,
    chat_completion,
    model_list,
    task_chunks,
    task_completion,
)
from service.runtime import Runtime

__all__ = ["OpenAIController"]


def _collections(runtime: Runtime, access: Access) -> list[str]:
    """The collections a key may choose as models: those with documents it reads, and its own."""
    held = {c for c in runtime.answerer.collections() if access.sees(c)}
    return sorted(held | (access.collections or set()))


class OpenAIController(Controller):
    """The chat a frontend (Open WebUI, LibreChat, the ``openai`` client) talks to."""

    tags = ["openai"]  # noqa: RUF012 (Litestar reads it as a class attribute)

    @get("/models", sync_to_thread=False, responses=errors(401, openai=True))
    def models(
        self, settings: SettingsDep, state: State, runtime: RuntimeDep, access: AccessDep
    ) -> ModelList:
        """The models, in the OpenAI shape: ``citeqa``, then ``citeqa/NAME`` per collection.

        ``citeqa`` asks every collection the key reads; ``citeqa/NAME`` asks NAME alone.
        """
        return model_list(settings.model_name, state.started, _collections(runtime, access))

    @post("/chat/completions", status_code=200,
          responses={200: ResponseSpec(ChatCompletion, description="answer")}
          | errors(400, 401, 404, 415, 502, openai=True))  # fmt: skip
    async def chat_completions(
        self,
        data: JSONBody[ChatCompletionRequest],
        runtime: RuntimeDep,
        settings: SettingsDep,
        access: AccessDep,
        request: Request[Any, Any, Any],
    ) -> ChatCompletion | ServerSentEvent:
        """OpenAI-compatible chat; the last user message is the question, earlier turns its context.

        A chat frontend's own background prompts (titles, tags, follow-up suggestions) get
        the plain LLM's reply, without retrieval or citations. The model ``citeqa/NAME``
        asks the collection NAME (404 if the key reads no such collection).
        """
        answerer = runtime.answerer
        collections = data.collections
        prefix = f"{settings.model_name}/"
        if data.model and data.model.startswith(prefix):
            name = data.model.removeprefix(prefix)
            if name not in _collections(runtime, access):
                raise NotFoundError(f"The model {data.model!r} does not exist")
            collections = [c for c in collections or [name] if c == name]
        scope = access.scope(collections, data.filter)
        model = data.model or settings.model_name
        include_usage = bool(data.stream_options and data.stream_options.include_usage)
        if is_frontend_task(data.messages):
            prompt = data.messages[-1].text
            content = await while_connected(
                request, run_task(answerer.llm, data.messages, settings)
            )
            if not data.stream:
                return task_completion(content, prompt, model)
            return EventStream(
                openai_stream(task_chunks(content, prompt, model, include_usage=include_usage))
            )
        answerer.check_capacity()
        question = await while_connected(
            request, standalone_question(answerer.llm, data.messages, settings)
        )
        titles = answerer.titles()
        sources = settings.chat_sources_block if data.sources_block is None else data.sources_block
        if not data.stream:
            response = await while_connected(
                request, answerer.ask(question, data.top_k, scope=scope)
            )
            return chat_completion(response, question, model, titles, sources=sources)
        cards = SourceCards(titles, settings.public_url or str(request.base_url))
        chunks = chat_chunks(
            answerer.ask_events(question, data.top_k, scope=scope), question, model, cards,
            sources=sources, include_usage=include_usage,
        )  # fmt: skip
        return EventStream(openai_stream(chunks))
