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

from index import CJK
from service.answering.language import LANGUAGE_NAMES
from service.answering.measures import entities_supported, numbers_supported
from service.answering.prompts import render_render_prompt, render_translate_prompt
from service.errors import LLMError
from service.llm import ChatModel

__all__ = ["Translations", "render_quotes"]

log = logging.getLogger(__name__)

_CJK = re.compile(f"[{CJK}]")
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

    A name the asker wrote in ``question`` may appear in a rendering too.
    """
    messages = render_render_prompt(quotes, LANGUAGE_NAMES[language])
    try:
        with anyio.fail_after(max(deadline - time.monotonic(), 0.0)):
            reply = await llm.complete(messages, max_tokens=64 * len(quotes) + 32)
    except (LLMError, TimeoutError) as exc:
        log.warning("answer rendering failed: %s", exc)
        return None
    rendered: dict[int, str] = {}
    lines = [line.strip() for line in reply.splitlines() if line.strip()]
    for line in lines:
        if found := _NUMBERED.match(line):
            rendered.setdefault(int(found[1]), found[2])
    if not rendered and len(quotes) == 1 and len(lines) == 1:
        rendered[1] = lines[0]  # one quote, rendered without its number
    renderings = [rendered.get(n, "") for n in range(1, len(quotes) + 1)]
    for quote, rendering in zip(quotes, renderings, strict=True):
        if not rendering or not numbers_supported(rendering, quote):
            return None
        # A quote in Latin letters keeps its names: the rendering may hold no other. (From
        # Chinese, names are rendered in other letters; only figures can be checked.)
        if not _CJK.search(quote) and not entities_supported(rendering, quote, question):
            return None
    return renderings
