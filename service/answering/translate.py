"""Across languages: a question put into the corpus's language, an answer into the asker's.

A question in another language than the documents is translated by the LLM (one short
call, kept in a small cache) and searched and answered in the documents' language, so
that its answer is a quote of its sentence as in any other language. The verified quotes
are then rendered in the asker's language by one more call; a rendering is shown only
when it states no figure its quote does not, and (for a quote in Latin letters) no name its
quote does not; and always beside the quote.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Sequence

import anyio

from index import CJK_CHAR, tokenize
from service.answering.language import LANGUAGE_NAMES, language_of
from service.answering.measures import names_in, names_supported, numbers_supported
from service.answering.prompts import render_render_prompt, render_translate_prompt
from service.errors import LLMError
from service.llm import ChatModel

__all__ = ["Translations", "render_quotes"]

log = logging.getLogger(__name__)

_CJK_LANGUAGES = frozenset({"zh", "ja"})
_NAME_RUN = re.compile(r"(?<![\w-])[A-Z][\w-]*(?:\s+[A-Z][\w-]*)*")
_PLACEHOLDER = re.compile(r"\{(\d+)\}")
_NUMBERED = re.compile(r"^\s*(\d+)[.)、:：]\s*(.+?)\s*$")


class Translations:
    """Questions translated by the LLM, the most recent ``size`` kept."""

    def __init__(self, size: int = 1024) -> None:
        self._kept: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._size = size

    async def translate(
        self, llm: ChatModel, question: str, language: str, deadline: float
    ) -> str | None:
        """``question`` in ``language`` (an ISO code); None when the LLM gives nothing."""
        key = (question, language)
        if key in self._kept:
            self._kept.move_to_end(key)
            return self._kept[key]
        messages = render_translate_prompt(question, LANGUAGE_NAMES[language])
        try:
            with anyio.fail_after(max(deadline - time.monotonic(), 0.0)):
                reply = await llm.complete(messages, max_tokens=96)
        except (LLMError, TimeoutError) as exc:
            log.warning("question translation failed: %s", exc)
            return None
        translated = " ".join(reply.split()).strip("\"'“”")
        if not translated:
            return None
        log.debug("question %r translated as %r", question, translated)
        self._kept[key] = translated
        if len(self._kept) > self._size:
            self._kept.popitem(last=False)
        return translated


async def render_quotes(
    llm: ChatModel, quotes: Sequence[str], language: str, deadline: float, question: str = ""
) -> list[str] | None:
    """Each quote in ``language``, or None unless every rendering keeps its figures and names.

    A rendering may name only what its quote (or the asker's ``question``) names. One that
    holds a capitalised word its quote lacks ("Chine et Corée du Sud" for "China and South
    Korea"), and any rendering into Chinese or Japanese (whose names cannot be compared
    letter by letter), is put back into the quote's language and kept only if every name
    comes back as the quote writes it: a translated name returns, an invented one does not.

    Into Chinese or Japanese, a rendering whose names do not come back (the small model
    writes Lingke as 林肯, "Lincoln") is asked for once more with the quote's names as
    placeholders ({1}, {2} …), each of which must come back once and is put back as the
    quote writes it.
    """
    cjk = language in _CJK_LANGUAGES
    renderings = await _translated_lines(llm, quotes, language, deadline)
    if renderings is not None and all(
        rendering and numbers_supported(rendering, quote)
        for quote, rendering in zip(quotes, renderings, strict=True)
    ):
        unsure = [
            i
            for i, (quote, rendering) in enumerate(zip(quotes, renderings, strict=True))
            if not CJK_CHAR.search(quote)
            and ((cjk and bool(names_in(quote))) or not names_supported(rendering, quote, question))
        ]
        if not unsure or await _names_come_back(
            llm, quotes, renderings, unsure, deadline, question
        ):
            return renderings
    if cjk:
        return await _rendered_with_names_kept(llm, quotes, language, deadline)
    return None


async def _names_come_back(
    llm: ChatModel,
    quotes: Sequence[str],
    renderings: list[str],
    unsure: list[int],
    deadline: float,
    question: str,
) -> bool:
    """Whether the renderings at ``unsure``, put back into the quotes' language, name no more.

    Each must name only what its quote (or the question) names.
    """
    language = language_of(quotes[unsure[0]])
    back = await _translated_lines(llm, [renderings[i] for i in unsure], language, deadline)
    kept = back is not None and all(
        names_supported(line, quotes[i], question) for i, line in zip(unsure, back, strict=True)
    )
    if not kept:
        log.debug("rendering %r names what its quote does not (back: %r)", renderings, back)
    return kept


async def _rendered_with_names_kept(
    llm: ChatModel, quotes: Sequence[str], language: str, deadline: float
) -> list[str] | None:
    masked = [_masked(quote) for quote in quotes]
    replies = await _translated_lines(llm, [text for text, _ in masked], language, deadline)
    if replies is None:
        return None
    renderings = []
    for quote, (_, names), reply in zip(quotes, masked, replies, strict=True):
        found = [int(n) for n in _PLACEHOLDER.findall(reply)]
        if not reply or sorted(found) != list(range(1, len(names) + 1)):
            log.debug("rendering %r does not keep the names of %r", reply, quote)
            return None
        rendering = _unmasked(reply, names)
        if not numbers_supported(rendering, quote):
            return None
        renderings.append(rendering)
    return renderings


def _unmasked(text: str, names: list[str]) -> str:
    return _PLACEHOLDER.sub(lambda found: names[int(found[1]) - 1], text)


def _masked(quote: str) -> tuple[str, list[str]]:
    """``quote`` with each name (a run of capitalised words) as {1}, {2} …, and the names.

    A capitalised stopword alone ("The", "In") is no name.
    """
    names: list[str] = []

    def placeholder(found: re.Match[str]) -> str:
        if not tokenize(found[0]):
            return found[0]
        names.append(found[0])
        return f"{{{len(names)}}}"

    return _NAME_RUN.sub(placeholder, quote), names


async def _translated_lines(
    llm: ChatModel, lines: Sequence[str], language: str, deadline: float
) -> list[str] | None:
    """Each line in ``language`` ("" for a line the reply lost); None when the LLM fails."""
    messages = render_render_prompt(lines, LANGUAGE_NAMES[language])
    try:
        with anyio.fail_after(max(deadline - time.monotonic(), 0.0)):
            reply = await llm.complete(messages, max_tokens=64 * len(lines) + 32)
    except (LLMError, TimeoutError) as exc:
        # A TimeoutError says nothing of itself: the answer's deadline passed.
        log.warning("answer rendering failed: %s", exc or "the answer's LLM deadline passed")
        return None
    translated: dict[int, str] = {}
    replied = [line.strip() for line in reply.splitlines() if line.strip()]
    for line in replied:
        if found := _NUMBERED.match(line):
            translated.setdefault(int(found[1]), found[2])
    if not translated and len(lines) == 1 and len(replied) == 1:
        translated[1] = replied[0]  # one line, translated without its number
    return [translated.get(n, "") for n in range(1, len(lines) + 1)]
