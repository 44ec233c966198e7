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
    "ChatCompletionRequest",
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


def model_list(name: str, created: int) -> dict[str, Any]:
    """The ``GET /v1/models`` body."""
    return {
        "object": "list",
        "data": [{"id": name, "object": "model", "created": created, "owned_by": "citeqa"}],
    }


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


def _usage(prompt: str, completion: str) -> dict[str, int]:
    # Whitespace tokens: the service's cost is not the upstream's, so this is an estimate.
    p, c = len(prompt.split()), len(completion.split())
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _citations(response: AskResponse) -> list[dict[str, Any]]:
    return [msgspec.to_builtins(c) for c in response.citations]


def chat_completion(
    response: AskResponse, question: str, model: str, titles: dict[str, str]
) -> dict[str, Any]:
    """A ``chat.completion`` object for a finished answer."""
    content = _content(response, titles)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": content,
                    "refusal": None,
                    "citations": _citations(response),
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(question, content),
        "system_fingerprint": None,
    }


def _open_webui_event(number: int, citation: Citation, titles: dict[str, str]) -> dict[str, Any]:
    title = titles.get(citation.doc_id, citation.doc_id)
    return {
        "type": "citation",
        "data": {
            "document": [citation.text],
            "metadata": [
                {
                    "source": f"[{number}] {title}",
                    "doc_id": citation.doc_id,
                    "sentence_id": citation.sentence_id,
                    "start": citation.start,
                    "end": citation.end,
                }
            ],
            "source": {"name": f"[{number}] {title}", "id": citation.sentence_id},
        },
    }


async def chat_chunks(
    events: AsyncGenerator[AskEvent, None],
    question: str,
    model: str,
    titles: dict[str, str],
    *,
    include_usage: bool,
) -> AsyncGenerator[dict[str, Any], None]:
    """``chat.completion.chunk`` objects for an answer stream, ending before ``[DONE]``."""
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
    }
    usage_field = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [choice], **usage_field, **extra}

    yield chunk({"role": "assistant", "content": ""})
    shown: list[str] = []
    response: AskResponse | None = None
    async with aclosing(events) as stream:
        async for event in stream:
            if isinstance(event, AnswerDelta):
                shown.append(event.text)
                yield chunk({"content": event.text})
            elif isinstance(event, CitationFound):
                event_body = _open_webui_event(event.number, event.citation, titles)
                yield {**base, "choices": [], **usage_field, "event": event_body}
            elif isinstance(event, AnswerDone):
                response = event.response
    assert response is not None
    if response.answerable:
        tail = sources_block(response, titles)
    else:
        tail = UNSUPPORTED_NOTE if shown else ABSTAIN_TEXT
    shown.append(tail)
    yield chunk({"content": tail})
    yield chunk({}, "stop", citations=_citations(response))
    if include_usage:
        yield {**base, "choices": [], "usage": _usage(question, "".join(shown))}
