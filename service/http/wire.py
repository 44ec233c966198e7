"""OpenAI-compatible chat: ``/v1/models`` and ``/v1/chat/completions``, citations kept.

Citations reach every kind of client at once: ``[n]`` markers plus a "Sources" block in
the content (any client), a structured ``citations`` list on the message or the final
chunk (API clients), and Open WebUI ``citation`` events in the stream (source cards).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from index import DEFAULT_COLLECTION, document_key
from service.answering.pipeline import AnswerDelta, AnswerDone, AskEvent
from service.schemas import AskResponse, Citation, Collections, FigureReading, Filter, TopK

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatMessage",
    "ModelList",
    "OpenAIErrorBody",
    "SourceCards",
    "chat_chunks",
    "chat_completion",
    "model_list",
    "readings_note",
    "sources_block",
    "task_chunks",
    "task_completion",
]


class ContentPart(msgspec.Struct):
    """One part of a multi-part message; only text parts are read."""

    type: str
    text: str | None = None


class ChatMessage(msgspec.Struct):
    """A chat turn; unknown fields (name, tool_calls, …) are ignored."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    @property
    def text(self) -> str:
        """The message's text, parts joined."""
        if isinstance(self.content, list):
            return " ".join(p.text for p in self.content if p.type == "text" and p.text)
        return self.content or ""


class StreamOptions(msgspec.Struct):
    """``stream_options``."""

    include_usage: bool = False


class ChatCompletionRequest(msgspec.Struct):
    """``POST /v1/chat/completions``; OpenAI fields this service does not use are ignored."""

    messages: Annotated[list[ChatMessage], Meta(min_length=1, max_length=500)]
    model: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    top_k: TopK = 5
    # This service's own: end the reply with a "Sources:" text block (default: the server's).
    sources_block: bool | None = None
    # Which documents to ask, as on /v1/ask (extra body fields for the openai client); a
    # model "citeqa/NAME" asks the collection NAME.
    collections: Collections | None = None
    filter: Filter | None = None


class OpenAIError(msgspec.Struct):
    """The ``error`` of an OpenAI-style error body."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorBody(msgspec.Struct):
    """Every error of the OpenAI-compatible routes."""

    error: OpenAIError


class ModelCard(msgspec.Struct, kw_only=True):
    """One entry of ``GET /v1/models``."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "citeqa"


class ModelList(msgspec.Struct, kw_only=True):
    """``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


def model_list(name: str, created: int, collections: Sequence[str] = ()) -> ModelList:
    """The ``GET /v1/models`` body: ``name`` (every collection), then ``name/C`` for each C."""
    ids = [name, *(f"{name}/{c}" for c in sorted(collections))]
    return ModelList(data=[ModelCard(id=i, created=created) for i in ids])


def _key(citation: Citation) -> str:
    """The index key of a citation's document, as ``titles`` are keyed."""
    return document_key(citation.collection, citation.doc_id)


def sources_block(citations: Sequence[Citation], titles: dict[str, str]) -> str:
    """The portable footnotes: each cited sentence quoted, with its document and offsets."""
    if not citations:
        return ""
    lines = []
    for n, c in enumerate(citations, 1):
        title = titles.get(_key(c), c.doc_id)
        where = f"{c.doc_id} [{c.start}, {c.end})" + (f", p. {c.page}" if c.page else "")
        named = where if title == c.doc_id else f"{title}, {where}"
        lines.append(f'[{n}] "{" ".join(c.text.split())}" ({named})')
    return "\n\nSources:\n" + "\n".join(lines)


def readings_note(figures: Sequence[FigureReading]) -> str:
    """The readings of the answer's machine-translated figures: " (18 10000 = 180,000)"."""
    if not figures:
        return ""
    return " (" + "; ".join(f"{f.text} = {f.reading}" for f in figures) + ")"


def _content(response: AskResponse, titles: dict[str, str], *, sources: bool) -> str:
    tail = sources_block(response.citations, titles) if sources else ""
    return response.answer + readings_note(response.figures) + tail


class Usage(msgspec.Struct):
    """Token counts; estimated, since the upstream's counts are not the service's cost."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(msgspec.Struct, kw_only=True):
    """``choices[0].message``, with the structured citations."""

    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None
    citations: list[Citation]
    # True when the LLM failed and the answer fell back to a source sentence.
    degraded: bool = False


class Choice(msgspec.Struct, kw_only=True):
    """One choice of a ``chat.completion``."""

    index: int = 0
    message: AssistantMessage
    logprobs: None = None
    finish_reason: Literal["stop"] = "stop"


class ChatCompletion(msgspec.Struct, kw_only=True):
    """``chat.completion``."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: None = None


class Delta(msgspec.Struct, omit_defaults=True):
    """A chunk's delta; unset fields are left out, as OpenAI does."""

    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(msgspec.Struct, kw_only=True):
    """One choice of a ``chat.completion.chunk``."""

    index: int = 0
    delta: Delta
    logprobs: None = None
    finish_reason: Literal["stop"] | None = None


class WebUISource(msgspec.Struct):
    """Open WebUI's source card header."""

    id: str
    name: str
    url: str


class WebUIMetadata(msgspec.Struct):
    """Open WebUI's per-document metadata; ``source`` tells cards apart, ``name`` titles one."""

    source: str
    name: str
    doc_id: str
    sentence_id: str
    start: int
    end: int


class WebUICitation(msgspec.Struct):
    """The ``data`` of an Open WebUI citation event: one card, one cited sentence."""

    document: list[str]
    metadata: list[WebUIMetadata]
    source: WebUISource
    distances: list[float]


class WebUIEvent(msgspec.Struct):
    """An Open WebUI event carried in a stream chunk."""

    data: WebUICitation
    type: Literal["citation"] = "citation"


class ChatCompletionChunk(msgspec.Struct, kw_only=True):
    """``chat.completion.chunk``; ``event`` and ``citations`` are this service's additions."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    system_fingerprint: None = None
    choices: list[ChunkChoice]
    usage: Usage | msgspec.UnsetType | None = msgspec.UNSET
    event: WebUIEvent | msgspec.UnsetType = msgspec.UNSET
    citations: list[Citation] | msgspec.UnsetType = msgspec.UNSET
    degraded: bool | msgspec.UnsetType = msgspec.UNSET


def _usage(prompt: str, completion: str) -> Usage:
    p, c = len(prompt.split()), len(completion.split())  # whitespace tokens: an estimate
    return Usage(p, c, p + c)


def chat_completion(
    response: AskResponse, question: str, model: str, titles: dict[str, str], *, sources: bool
) -> ChatCompletion:
    """A ``chat.completion`` object for a finished answer."""
    content = _content(response, titles, sources=sources)
    return _completion(content, response.citations, question, model, degraded=response.degraded)


def task_completion(content: str, prompt: str, model: str) -> ChatCompletion:
    """A ``chat.completion`` for a frontend task: plain text, no citations."""
    return _completion(content, [], prompt, model)


def _completion(
    content: str, citations: list[Citation], prompt: str, model: str, *, degraded: bool = False
) -> ChatCompletion:
    return ChatCompletion(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=model,
        choices=[
            Choice(
                message=AssistantMessage(content=content, citations=citations, degraded=degraded)
            )
        ],
        usage=_usage(prompt, content),
    )


class SourceCards:
    """Open WebUI source cards for an answer's citations.

    Open WebUI numbers cards by distinct ``metadata.source`` and links ``[n]`` to the n-th,
    so each cited sentence is its own source, in citation order. A card is named by its
    document's title, with the cited offsets when several cards share that document.
    """

    def __init__(self, titles: dict[str, str], base_url: str) -> None:
        self.titles = titles
        self.base_url = base_url.rstrip("/")

    def events(self, citations: Sequence[Citation]) -> list[WebUIEvent]:
        """One card per citation, in ``[n]`` order."""
        per_document = Counter(_key(c) for c in citations)
        shared = {doc_id for doc_id, count in per_document.items() if count > 1}
        return [self._card(c, located=_key(c) in shared) for c in citations]

    def _card(self, citation: Citation, *, located: bool) -> WebUIEvent:
        name = self.titles.get(_key(citation), citation.doc_id)
        if citation.page is not None:
            name = f"{name}, p. {citation.page}"
        if located:
            name = f"{name}, chars {citation.start}-{citation.end}"
        url = f"{self.base_url}/v1/documents/{citation.doc_id}"
        if citation.collection != DEFAULT_COLLECTION:
            url += f"?collection={citation.collection}"
        metadata = WebUIMetadata(
            citation.sentence_id, name, citation.doc_id, citation.sentence_id,
            citation.start, citation.end,
        )  # fmt: skip
        source = WebUISource(citation.sentence_id, name, url)
        return WebUIEvent(WebUICitation([citation.text], [metadata], source, [citation.score]))


class _Chunks:
    """Builds the chunks of one streamed reply, which share an id, a time and a model."""

    def __init__(self, model: str, *, include_usage: bool) -> None:
        self.id, self.created, self.model = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), model
        self.include_usage = include_usage
        self.shown: list[str] = []

    def make(self, choices: list[ChunkChoice], **extra: Any) -> ChatCompletionChunk:
        fields = {"usage": None if self.include_usage else msgspec.UNSET, **extra}
        return ChatCompletionChunk(
            id=self.id, created=self.created, model=self.model, choices=choices, **fields
        )

    def text(self, content: str, role: Literal["assistant"] | None = None) -> ChatCompletionChunk:
        self.shown.append(content)
        return self.make([ChunkChoice(delta=Delta(role=role, content=content))])

    def end(
        self, citations: list[Citation], prompt: str, *, degraded: bool = False
    ) -> list[ChatCompletionChunk]:
        stop = [ChunkChoice(delta=Delta(), finish_reason="stop")]
        final = self.make(stop, citations=citations, degraded=degraded)
        if not self.include_usage:
            return [final]
        return [final, self.make([], usage=_usage(prompt, "".join(self.shown)))]


async def chat_chunks(
    events: AsyncGenerator[AskEvent, None],
    question: str,
    model: str,
    cards: SourceCards,
    *,
    sources: bool,
    include_usage: bool,
) -> AsyncGenerator[ChatCompletionChunk, None]:
    """``chat.completion.chunk`` objects for an answer stream, ending before ``[DONE]``.

    The content is the verified text as it is released, then the Sources block: joined,
    exactly the non-streamed reply's content. The source cards follow the text, once the
    answer's citations are all known.
    """
    chunks = _Chunks(model, include_usage=include_usage)
    yield chunks.text("", role="assistant")
    response: AskResponse | None = None
    async with aclosing(events) as stream:
        async for event in stream:
            if isinstance(event, AnswerDelta):
                yield chunks.text(event.text)
            elif isinstance(event, AnswerDone):
                response = event.response
    assert response is not None
    if response.figures:
        yield chunks.text(readings_note(response.figures))
    for card in cards.events(response.citations):
        yield chunks.make([], event=card)
    if sources and response.citations:
        yield chunks.text(sources_block(response.citations, cards.titles))
    for chunk in chunks.end(response.citations, question, degraded=response.degraded):
        yield chunk


async def task_chunks(
    content: str, prompt: str, model: str, *, include_usage: bool
) -> AsyncGenerator[ChatCompletionChunk, None]:
    """A frontend task's reply as chunks: the role, the text, the end."""
    chunks = _Chunks(model, include_usage=include_usage)
    yield chunks.text("", role="assistant")
    yield chunks.text(content)
    for chunk in chunks.end([], prompt):
        yield chunk
