"""The shortest phrase of the cited sentences that answers: what a reader is shown.

The answer prompt asks for a sentence of the model's own, which is how the small model
picks its source sentence best; its quote (``quote.align``) is often the wrong part of that
sentence or all of it. Once the judge has said yes, the LLM is asked, as the next turn of
the judge's own prompt (so only that turn is new to it, ``prompts/phrase.md``), for the
shortest phrase of those sentences that answers. The phrase is shown when it copies one of
them word for word (``Quote.copied``), holds what the question asks for and adds something to
the question; otherwise the verified quotes stand.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import anyio

from service.answering.ground import answers_as_asked
from service.answering.measures import adds_to
from service.answering.prompts import render_phrase_prompt
from service.answering.quote import Quote, align
from service.errors import LLMError
from service.llm import ChatModel
from service.observe import elapsed_ms

__all__ = ["Phrase", "shortest_phrase"]

log = logging.getLogger(__name__)

_MAX_TOKENS = 48  # a phrase, not a paragraph; a longer reply is cut and is no copy


@dataclass(frozen=True)
class Phrase:
    """A phrase that answers, as a quote of the ``sentence``-th of the sentences asked about."""

    sentence: int
    quote: Quote


async def shortest_phrase(
    llm: ChatModel,
    sentences: Sequence[str],
    question: str,
    deadline: float,
    timings: dict[str, float],
) -> Phrase | None:
    """The phrase of ``sentences`` that the LLM copies as the answer; None if none passes."""
    started = time.perf_counter()
    try:
        with anyio.fail_after(max(deadline - time.monotonic(), 0.0)):
            reply = await llm.complete(
                render_phrase_prompt(list(sentences), question), max_tokens=_MAX_TOKENS
            )
    except (LLMError, TimeoutError) as exc:
        log.warning("phrase call failed: %s", exc)
        return None
    finally:
        timings["phrase"] = elapsed_ms(started)
    reply = " ".join(reply.split()).strip("\"'“”")
    log.debug("shortest phrase: %r", reply)
    for k, sentence in enumerate(sentences):
        quote = align(reply, sentence, question)
        if quote is None or not quote.copied or not adds_to(question, quote.text):
            continue
        if answers_as_asked(question, quote.text, [sentence]):
            return Phrase(k, quote)
    return None
