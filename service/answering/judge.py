"""The LLM's yes/no judgements: does a text answer, does a sentence or question give orders.

Each is one call; P(yes) comes from the first reply token's top logprobs (``ground.p_yes``).
The support judge's yes may go on to the shortest phrase that answers (``phrase``). The
prompts are ``prompts/judge.md`` and ``prompts/screen_*.md``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass

from index import CorpusIndex
from service.answering.ground import Grounder, p_yes
from service.answering.instructions import (
    INSTRUCTION_MIN,
    QUESTION_INSTRUCTION_MIN,
    document_instructions,
    judged_instructions,
    suspect_question,
)
from service.answering.prompts import render_judge_prompt, render_screen_prompt
from service.errors import LLMError
from service.llm import ChatModel, Message, QueuedChatModel, until
from service.observe import elapsed_ms

__all__ = [
    "Judgement",
    "first_token_alternatives",
    "gives_orders",
    "screen_documents",
    "supports",
    "yes_probability",
]

log = logging.getLogger(__name__)

_PHRASE_TOKENS = 32  # a yes and a phrase; a reply cut here still aligns to its sentence
_YES = re.compile(r"^\s*yes\b[\s,.:;\u2014-]*", re.IGNORECASE)


async def first_token_alternatives(
    llm: ChatModel,
    messages: list[Message],
    deadline: float,
    timings: dict[str, float],
    name: str,
) -> list[tuple[str, float]] | None:
    """The first reply token's likeliest alternatives with their logprobs.

    None when the call fails; empty when the server sends no logprobs. The time goes into
    ``timings[name]``.
    """
    return (await _judged_reply(llm, messages, deadline, timings, name, 1))[0]


async def _judged_reply(
    llm: ChatModel,
    messages: list[Message],
    deadline: float,
    timings: dict[str, float],
    name: str,
    max_tokens: int,
) -> tuple[list[tuple[str, float]] | None, str]:
    """The first token's alternatives and the reply, which ends at once unless it says yes."""
    started = time.perf_counter()
    top: list[tuple[str, float]] | None = None
    text = ""
    try:
        async with (
            aclosing(llm.stream(messages, max_tokens=max_tokens)) as tokens,
            aclosing(until(tokens, deadline)) as timed,
        ):
            async for token in timed:
                if top is None:
                    top = list(token.top)
                    if not token.text.strip().lower().startswith("yes"):
                        break  # a no needs no more words
                text += token.text
    except LLMError as exc:
        log.warning("%s call failed: %s", name, exc)
    timings[name] = elapsed_ms(started)
    return top, text


async def yes_probability(
    llm: ChatModel,
    messages: list[Message],
    deadline: float,
    timings: dict[str, float],
    name: str,
) -> float | None:
    """P(yes) of a yes/no prompt, from the first reply token's logprobs.

    None when the call fails or the server sends no logprobs; the time goes into
    ``timings[name]``.
    """
    top = await first_token_alternatives(llm, messages, deadline, timings, name)
    return None if top is None else p_yes(top)


@dataclass(frozen=True)
class Judgement:
    """The judge's P(yes) that a text answers, and the phrase it gave after its yes."""

    support: float
    phrase: str  # "" when none was asked for or given


async def supports(
    llm: ChatModel,
    sentences: Sequence[str],
    question: str,
    deadline: float,
    timings: dict[str, float],
    name: str,
    *,
    phrase: bool = False,
) -> Judgement | None:
    """The LLM's P(yes) that ``sentences`` state the answer to ``question``.

    With ``phrase``, a yes goes on to the shortest phrase that answers (``prompts/judge.md``):
    a few more tokens of the same call. None when the judge gives no P(yes).
    """
    messages = render_judge_prompt(list(sentences), question)
    max_tokens = _PHRASE_TOKENS if phrase else 1
    top, reply = await _judged_reply(llm, messages, deadline, timings, name, max_tokens)
    support = None if top is None else p_yes(top)
    if support is None:
        return None
    return Judgement(support, _after_yes(reply) if phrase else "")


def _after_yes(reply: str) -> str:
    """What a "yes: …" reply says after its yes."""
    return _YES.sub("", " ".join(reply.split()), count=1).strip("\"'“”")


async def gives_orders(
    llm: ChatModel, question: str, deadline: float, timings: dict[str, float]
) -> bool:
    """Whether the question tries to change how the service behaves (the LLM judges)."""
    if not suspect_question(question):
        return False
    messages = render_screen_prompt("question", question)
    p = await yes_probability(llm, messages, deadline, timings, "screen")
    log.debug("question screened: P(instruction) %s", p)
    return p is not None and p >= QUESTION_INSTRUCTION_MIN


async def screen_documents(
    llm: ChatModel, index: CorpusIndex, grounder: Grounder, deadline_s: float
) -> None:
    """Have the LLM judge, once per document, which suspect sentences give orders.

    Documents judged before (the index keeps verdicts across writes) cost nothing. Each
    call waits until the LLM is idle, so that screening a large upload never holds up a
    question. When a judgement fails (or the server sends no logprobs), screening stops:
    the documents left unjudged keep their suspects out, and the next warm-up tries them
    again.
    """
    judged = orders_found = 0
    for doc_id in list(index.documents):
        if document_instructions(index, doc_id) is not None:
            continue
        sentences = index.sentences_of(doc_id)
        orders = []
        for k in grounder.suspects(doc_id):
            # Questions go first: a new document's suspects wait out of the prompt.
            if isinstance(llm, QueuedChatModel):
                await llm.until_idle(0.1)
            messages = render_screen_prompt("sentence", sentences[k].text)
            deadline = time.monotonic() + deadline_s
            p = await yes_probability(llm, messages, deadline, {}, "screen")
            if p is None:
                log.warning("instruction screen stopped: no judgement for a suspect")
                grounder.refresh()
                return
            judged += 1
            if p >= INSTRUCTION_MIN:
                orders.append(k)
        judged_instructions(index, doc_id, orders)
        orders_found += len(orders)
    if judged:
        grounder.refresh()
        log.info("screened %d suspect sentences: %d give orders", judged, orders_found)
