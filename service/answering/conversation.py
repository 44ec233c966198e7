"""Chat turns: the question a conversation asks, and the frontends' own background tasks.

A chat request is either a frontend's task (Open WebUI's "### Task:" prompts for titles,
tags, follow-ups, queries and autocomplete; LibreChat's title prompt), answered by the
plain LLM with no retrieval, or a question, answered with citations. A follow-up
question is rewritten to stand alone, from a history cut to its own limits.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Protocol

import anyio

from service.answering.language import ABSTAIN_TEXTS
from service.answering.measures import name_lists, terms
from service.answering.prompts import render_condense_prompt
from service.errors import BusyError, InvalidRequestError, LLMError
from service.llm import ChatModel, QueuedChatModel
from service.schemas import MAX_QUESTION_CHARS
from service.settings import Settings

__all__ = [
    "Turn",
    "history",
    "is_frontend_task",
    "looks_dependent",
    "resolve_positions",
    "run_task",
    "standalone_question",
]

log = logging.getLogger(__name__)


class Turn(Protocol):
    """A chat turn as this module reads it: who spoke, and the text they sent."""

    @property
    def role(self) -> str:
        """``user``, ``assistant``, ``system`` or another chat role."""
        ...

    @property
    def text(self) -> str:
        """The turn's text, its parts joined."""
        ...


_TASK = re.compile(
    r"\A\s*###\s*Task:"  # Open WebUI: title, tags, follow-ups, queries, autocomplete, …
    r"|5-word-or-less title for the conversation"  # LibreChat
    r"|concise title \(max \d+ characters\) for a conversation"  # LibreChat assistants
    r"|analyze this conversation and provide:.*detected language",  # LibreChat agents
    re.IGNORECASE | re.DOTALL,
)
_FOLLOW_UP = re.compile(
    r"^\s*(?:and|but|or|also|so|then|what about|how about|what of)\b"
    r"|\b(?:it|its|they|them|their|theirs|this|that|these|those|there|he|she|his|her|him"
    r"|both|the two|the same|the latter|the former"
    r"|the (?:first|second|third|last|other) ones?)\b",
    re.IGNORECASE,
)
_SOURCES_BLOCK = re.compile(r"\n\s*Sources:\s*\n.*", re.DOTALL)
_MARKERS = re.compile(r"\s*\[\d+\]")
_ORDINAL = re.compile(
    r"\bthe\s+(first|second|third|fourth|fifth|last|latter|former)(?:\s+one)?\b", re.IGNORECASE
)
_POSITIONS = {"first": 0, "former": 0, "second": 1, "third": 2, "fourth": 3, "fifth": 4,
              "last": -1, "latter": -1}  # fmt: skip


def _last_user(messages: Sequence[Turn]) -> int:
    users = [i for i, m in enumerate(messages) if m.role == "user" and m.text.strip()]
    if not users:
        raise InvalidRequestError("messages must include a user message with text")
    return users[-1]


def is_frontend_task(messages: Sequence[Turn]) -> bool:
    """Whether the request is a chat frontend's background prompt, not a user's question."""
    # Open WebUI sends the task as the last message, LibreChat sometimes after the chat.
    candidates = [*messages[-1:], *(m for m in reversed(messages) if m.role == "user")][:2]
    return any(_TASK.search(m.text[:4000]) for m in candidates)


def _clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, keeping the head (instructions) and the tail (input)."""
    if len(text) <= limit:
        return text
    half = max((limit - 3) // 2, 0)
    return f"{text[:half]}\n…\n{text[len(text) - half :]}"


async def run_task(llm: ChatModel | None, messages: Sequence[Turn], settings: Settings) -> str:
    """The plain LLM's reply to a frontend task, capped in tokens and time; "" if it fails."""
    if llm is None:
        return ""
    if isinstance(llm, QueuedChatModel):
        llm = llm.chores()  # behind every question, and cancelled by one
    budget = settings.task_prompt_chars
    prompt: list[dict[str, str]] = []
    for message in reversed(messages):
        if budget <= 0:
            break
        if not message.text.strip():
            continue
        role = message.role if message.role in ("system", "assistant") else "user"
        text = _clip(message.text, budget)
        prompt.insert(0, {"role": role, "content": text})
        budget -= len(text)
    try:
        with anyio.fail_after(settings.task_timeout_s):
            return await llm.complete(prompt, max_tokens=settings.task_max_tokens)
    except (LLMError, BusyError, TimeoutError) as exc:  # a background task never fails a chat
        log.warning("frontend task failed: %s", exc or "timed out")
        return ""


def history(messages: Sequence[Turn], settings: Settings) -> list[tuple[str, str]]:
    """The user and assistant turns before the last question, within the history limits.

    Older turns are dropped first; assistant turns lose their ``[n]`` markers and Sources
    block, which say nothing about what the conversation is about.
    """
    turns = []
    for m in messages[: _last_user(messages)]:
        if m.role not in ("user", "assistant"):
            continue
        text = m.text if m.role == "user" else _MARKERS.sub("", _SOURCES_BLOCK.sub("", m.text))
        text = " ".join(text[: settings.chat_history_chars].split())
        # An abstention names nothing to refer back to.
        if text and text not in ABSTAIN_TEXTS.values():
            turns.append((m.role, text))
    kept: list[tuple[str, str]] = []
    budget = settings.chat_history_chars
    for role, text in reversed(turns[-settings.chat_history_turns :]):
        if budget <= 0:
            break
        kept.insert(0, (role, text[:budget]))  # a turn's head carries its point
        budget -= len(text)
    return kept


def resolve_positions(question: str, earlier: Sequence[tuple[str, str]]) -> str:
    """Replace "the second one" and the like by that item of the latest list of names.

    The small LLM miscounts lists, so positions are resolved here: in "China and South
    Korea", "the second one" is South Korea. Turns are searched newest first.
    """
    match = _ORDINAL.search(question)
    if match is None:
        return question
    for _role, text in reversed(earlier):
        lists = name_lists(text)
        if not lists:
            continue
        items = lists[-1]
        position = _POSITIONS[match.group(1).lower()]
        if position < len(items):
            return question[: match.start()] + items[position] + question[match.end() :]
        return question
    return question


def looks_dependent(question: str) -> bool:
    """Whether a question leans on earlier turns: a pronoun, a leading "and", or too few words."""
    return len(terms(question)) <= 2 or bool(_FOLLOW_UP.search(question))


async def standalone_question(
    llm: ChatModel | None, messages: Sequence[Turn], settings: Settings
) -> str:
    """The last user message, rewritten with the earlier turns when it does not stand alone."""
    question = " ".join(messages[_last_user(messages)].text.split())
    if len(question) > MAX_QUESTION_CHARS:
        raise InvalidRequestError(
            f"the question (the last user message) is {len(question)} characters; "
            f"the limit is {MAX_QUESTION_CHARS}"
        )
    earlier = history(messages, settings)
    question = resolve_positions(question, earlier)
    if not earlier or llm is None or not looks_dependent(question):
        return question
    try:
        with anyio.fail_after(settings.task_timeout_s):
            reply = await llm.complete(render_condense_prompt(earlier, question), max_tokens=60)
    except (LLMError, TimeoutError) as exc:
        log.warning("follow-up rewrite failed: %s", exc or "timed out")
        reply = ""
    lines = [line for line in reply.strip().splitlines() if line.strip()]
    first = re.sub(r"^\s*(?:rewritten|question)\s*:\s*", "", lines[0], flags=re.I) if lines else ""
    rewritten = first.strip(" \"'")
    if not rewritten or len(rewritten) > MAX_QUESTION_CHARS:
        previous = next((text for role, text in reversed(earlier) if role == "user"), "")
        rewritten = f"{previous} {question}".strip()[-MAX_QUESTION_CHARS:]
    # A wrong rewrite ("it" taken for the wrong company) is the commonest follow-up failure.
    log.debug("follow-up %r rewritten as %r", question, rewritten)
    return rewritten
