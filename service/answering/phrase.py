"""The shortest phrase of the cited sentences that answers: what a reader is shown.

The answer prompt asks for a sentence of the model's own, which is how the small model
picks its source sentence best; its quote (``quote.align``) is often the wrong part of that
sentence or all of it. The support judge, asked about those sentences, follows its yes with
the shortest phrase that answers (``prompts/judge.md``). That phrase, aligned to one of the
sentences, is shown when it holds what the question asks for and adds something to the
question; otherwise the verified quotes stand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from service.answering.ground import answers_as_asked
from service.answering.measures import adds_to
from service.answering.quote import Quote, align

__all__ = ["Phrase", "one_item_of", "phrase_of"]


@dataclass(frozen=True)
class Phrase:
    """A phrase that answers, as a quote of the ``sentence``-th of the sentences asked about."""

    sentence: int
    quote: Quote


def phrase_of(reply: str, sentences: Sequence[str], question: str) -> Phrase | None:
    """The quote of ``sentences`` that the judge's phrase ``reply`` gives; None if none passes.

    A word-for-word copy is taken first; else the first sentence the phrase aligns with.
    """
    if not reply:
        return None
    found: list[Phrase] = []
    for k, sentence in enumerate(sentences):
        quote = align(reply, sentence, question)
        if quote is None or not adds_to(question, quote.text):
            continue
        if answers_as_asked(question, quote.text, [sentence]):
            found.append(Phrase(k, quote))
    return next((p for p in found if p.quote.copied), found[0] if found else None)


def one_item_of(quote: Quote, sentence: str) -> bool:
    """Whether ``quote`` is one item of a ``、`` list of its sentence ("Content and channels")."""
    before, after = sentence[: quote.start].rstrip(), sentence[quote.end :].lstrip()
    return before.endswith("、") or after.startswith("、")
