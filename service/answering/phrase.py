"""The shortest phrase of a sentence that answers, for a sentence about to be given whole.

A sentence is given whole when the reply named no phrase of it that passed the checks: a
second opinion vouched for it. The LLM is asked once
more, with that sentence alone (``prompts/phrase.md``), and its reply is shown only when it
copies the sentence word for word (``quote.align``); otherwise the sentence stays whole.
"""

from __future__ import annotations

import logging
import time

import anyio

from service.answering.prompts import render_phrase_prompt
from service.answering.quote import Quote, align
from service.errors import LLMError
from service.llm import ChatModel
from service.observe import elapsed_ms

__all__ = ["shortest_phrase"]

log = logging.getLogger(__name__)

_MAX_TOKENS = 48  # a phrase, not a paragraph; a longer reply is cut and not a copy


async def shortest_phrase(
    llm: ChatModel,
    sentence: str,
    question: str,
    deadline: float,
    timings: dict[str, float],
) -> Quote | None:
    """The phrase of ``sentence`` the LLM copies as the answer; None if it copies none."""
    started = time.perf_counter()
    try:
        with anyio.fail_after(max(deadline - time.monotonic(), 0.0)):
            reply = await llm.complete(
                render_phrase_prompt(sentence, question), max_tokens=_MAX_TOKENS
            )
    except (LLMError, TimeoutError) as exc:
        log.warning("phrase call failed: %s", exc)
        return None
    finally:
        timings["phrase"] = timings.get("phrase", 0.0) + elapsed_ms(started)
    log.debug("shortest phrase of %r: %r", sentence[:60], reply)
    quote = align(reply.strip().strip('"'), sentence, question)
    if quote is None or not quote.copied:
        return None
    return quote
