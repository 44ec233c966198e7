"""OpenAI-compatible chat: ``/v1/models`` and ``/v1/chat/completions``, citations kept.

Citations reach every kind of client at once: ``[n]`` markers plus a "Sources" block in
the content (any client), a structured ``citations`` list on the message or the final
chunk (API clients), and Open WebUI ``citation`` events in the stream (source cards).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from service._answer import AnswerDelta, AnswerDone, Answerer, AskEvent, CitationFound
from service._errors import InvalidRequestError, LLMError
from service._prompts import render_condense_prompt
from service._schemas import AskResponse, Citation, TopK
from service._verify import terms

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ModelList",
    "chat_chunks",
    "chat_completion",
    "model_list",
    "standalone_question",
]

ABSTAIN_TEXT = "The documents do not answer this question."
UNSUPPORTED_NOTE = "\n\n(No source sentence supports the text above, so it is not an answer.)"
_FOLLOW_UP = re.compile(
    r"^\s*(?:and|but|or|also|so|then|what about|how about|what of)\b"
    r"|\b(?:it|its|they|them|their|this|that|these|those|there|he|she|his|her|him)\b",
    re.IGNORECASE,
)
_MAX_QUESTION = 2000


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


def model_list(name: str, created: int) -> ModelList:
    """The ``GET /v1/models`` body."""
    return ModelList(data=[ModelCard(id=name, created=created)])


def _looks_dependent(question: str) -> bool:
    return len(terms(question)) <= 2 or bool(_FOLLOW_UP.search(question))


async def standalone_question(answerer: Answerer, messages: list[ChatMessage]) -> str:
    """The last user message, made self-contained with the earlier turns when it needs them."""
    users = [i for i, m in enumerate(messages) if m.role == "user" and m.text.strip()]
    if not users:
        raise InvalidRequestError("messages must include a user message with text")
    question = " ".join(messages[users[-1]].text.split())
    if len(question) > _MAX_QUESTION:
        raise InvalidRequestError(f"the last user message is over {_MAX_QUESTION} characters")
    turns = [(m.role, m.text) for m in messages[: users[-1]] if m.role in ("user", "assistant")]
    earlier = turns[-4:]
    if not earlier or answerer.llm is None or not _looks_dependent(question):
        return question
    previous = next((text for role, text in reversed(earlier) if role == "user"), "")
    try:
        rewritten = await answerer.llm.complete(
            render_condense_prompt(earlier, question), max_tokens=60
        )
    except LLMError:
        rewritten = ""
    rewritten = rewritten.strip().splitlines()[0].strip(" \"'") if rewritten.strip() else ""
    if not rewritten or len(rewritten) > _MAX_QUESTION:
        return f"{previous} {question}".strip()[:_MAX_QUESTION]
    return rewritten


def sources_block(response: AskResponse, titles: dict[str, str]) -> str:
    """The portable footnotes: each cited sentence quoted, with its document and offsets."""
    if not response.citations:
        return ""
    lines = [
        f'[{n}] "{" ".join(c.text.split())}" ({titles.get(c.doc_id, c.doc_id)}, '
        f"{c.doc_id} [{c.start}, {c.end}))"
        for n, c in enumerate(response.citations, 1)
    ]
    return "\n\nSources:\n" + "\n".join(lines)


def _content(response: AskResponse, titles: dict[str, str]) -> str:
    if not response.answerable or not response.answer:
        return ABSTAIN_TEXT
    return response.answer + sources_block(response, titles)


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

    name: str
    id: str


class WebUIMetadata(msgspec.Struct):
    """Open WebUI's per-document metadata; ``source`` tells cards apart."""

    source: str
    doc_id: str
    sentence_id: str
    start: int
    end: int


class WebUICitation(msgspec.Struct):
    """The ``data`` of an Open WebUI citation event."""

    document: list[str]
    metadata: list[WebUIMetadata]
    source: WebUISource


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


def _usage(prompt: str, completion: str) -> Usage:
    p, c = len(prompt.split()), len(completion.split())  # whitespace tokens: an estimate
    return Usage(p, c, p + c)


def chat_completion(
    response: AskResponse, question: str, model: str, titles: dict[str, str]
) -> ChatCompletion:
    """A ``chat.completion`` object for a finished answer."""
    content = _content(response, titles)
    return ChatCompletion(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=model,
        choices=[Choice(message=AssistantMessage(content=content, citations=response.citations))],
        usage=_usage(question, content),
    )


def _open_webui_event(number: int, citation: Citation, titles: dict[str, str]) -> WebUIEvent:
    name = f"[{number}] {titles.get(citation.doc_id, citation.doc_id)}"
    metadata = WebUIMetadata(
        name, citation.doc_id, citation.sentence_id, citation.start, citation.end
    )
    return WebUIEvent(
        WebUICitation([citation.text], [metadata], WebUISource(name, citation.sentence_id))
    )


async def chat_chunks(
    events: AsyncGenerator[AskEvent, None],
    question: str,
    model: str,
    titles: dict[str, str],
    *,
    include_usage: bool,
) -> AsyncGenerator[ChatCompletionChunk, None]:
    """``chat.completion.chunk`` objects for an answer stream, ending before ``[DONE]``."""
    chunk_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    usage: msgspec.UnsetType | None = None if include_usage else msgspec.UNSET

    def chunk(choices: list[ChunkChoice], **extra: Any) -> ChatCompletionChunk:
        fields = {"usage": usage, **extra}
        return ChatCompletionChunk(
            id=chunk_id, created=created, model=model, choices=choices, **fields
        )

    def text(content: str, role: Literal["assistant"] | None = None) -> ChatCompletionChunk:
        return chunk([ChunkChoice(delta=Delta(role=role, content=content))])

    yield text("", role="assistant")
    shown: list[str] = []
    response: AskResponse | None = None
    async with aclosing(events) as stream:
        async for event in stream:
            if isinstance(event, AnswerDelta):
                shown.append(event.text)
                yield text(event.text)
            elif isinstance(event, CitationFound):
                yield chunk([], event=_open_webui_event(event.number, event.citation, titles))
            elif isinstance(event, AnswerDone):
                response = event.response
    assert response is not None
    if response.answerable:
        tail = sources_block(response, titles)
    else:
        tail = UNSUPPORTED_NOTE if shown else ABSTAIN_TEXT
    shown.append(tail)
    yield text(tail)
    final = ChunkChoice(delta=Delta(), finish_reason="stop")
    yield chunk([final], citations=response.citations)
    if include_usage:
        yield chunk([], usage=_usage(question, "".join(shown)))
