"""Compose the answer: verified claims become text with ``[n]`` markers and citations.

One composition serves the stream and the final answer. Its parts are released to the
user in order and never change afterwards, so the text a stream has shown, joined, is
always exactly the answer of record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from index import Sentence, split_key
from service.answering.language import ABSTAIN_TEXTS
from service.answering.measures import figures_in
from service.answering.quote import Quote
from service.schemas import Citation, FigureReading

__all__ = ["ABSTAIN_TEXT", "Composition", "VerifiedClaim", "cite"]


ABSTAIN_TEXT = ABSTAIN_TEXTS["en"]


@dataclass(frozen=True)
class VerifiedClaim:
    """A claim that passed verification, with the sentence that supports it."""

    text: str
    sentence_index: int  # position in CorpusIndex.sentences
    support: float


def cite(sentence: Sentence, score: float, page: int | None = None) -> Citation:
    """The wire citation of a sentence, on ``page`` of a paged document."""
    collection, doc_id = split_key(sentence.doc_id)
    return Citation(
        doc_id, collection, sentence.sentence_id, sentence.start, sentence.end, sentence.text,
        round(score, 4), page,
    )  # fmt: skip


def _no_pages(sentence: Sentence) -> int | None:
    return None


@dataclass
class Composition:
    """The answer under construction: its parts, their citations, and what has been released."""

    sentences: Sequence[Sentence]
    page_of: Callable[[Sentence], int | None] = _no_pages
    parts: list[str] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)  # the parts' text, without markers
    markers: list[int] = field(default_factory=list)  # each part's [n]
    citations: list[Citation] = field(default_factory=list)
    numbers: dict[int, int] = field(default_factory=dict)  # sentence index -> [n]
    released_parts: int = 0
    released_citations: int = 0

    def add(self, claims: Sequence[VerifiedClaim]) -> None:
        """Append claims as parts ``"text [n]."``; a repeated claim is left out."""
        for claim in claims:
            if claim.sentence_index not in self.numbers:
                sentence = self.sentences[claim.sentence_index]
                self.citations.append(cite(sentence, claim.support, self.page_of(sentence)))
                self.numbers[claim.sentence_index] = len(self.citations)
            stripped = claim.text.rstrip(".!?;:, ")
            body = " ".join(stripped.split())
            ending = claim.text[len(stripped) :].strip()[:1] or "."
            part = f"{body} [{self.numbers[claim.sentence_index]}]{ending}"
            if part not in self.parts:
                self.parts.append(part)
                self.claims.append(body)
                self.markers.append(self.numbers[claim.sentence_index])

    @property
    def cited(self) -> list[int]:
        """Sentence indices cited so far, in corpus order."""
        return sorted(self.numbers)

    @property
    def pending(self) -> bool:
        """Whether some parts have not been released yet."""
        return self.released_parts < len(self.parts)

    @property
    def answer(self) -> str:
        """The whole answer text."""
        return " ".join(self.parts)

    @property
    def statement(self) -> str:
        """What the answer says, without its ``[n]`` markers (which are figures too)."""
        return " ".join(self.claims)

    def overlaps(self, sentence_index: int, quote: Quote) -> bool:
        """Whether ``quote`` (offsets into that sentence) overlaps a part quoting it.

        A part that is the whole sentence overlaps any quote of it.
        """
        source = self.sentences[sentence_index].text
        for body, n in zip(self.claims, self.markers, strict=True):
            if self.numbers.get(sentence_index) != n:
                continue
            start = source.find(body)
            if start < 0:  # flattened whitespace: compare words instead
                if set(quote.text.split()) & set(body.split()):
                    return True
                continue
            if quote.start < start + len(body) and start < quote.end:
                return True
        return False

    @property
    def figures(self) -> list[FigureReading]:
        """The figures of the answer that a rule reads ("18 10000" is 180,000)."""
        return [
            FigureReading(f.text, f.value, f"{f.value:,.0f}", n)
            for body, n in zip(self.claims, self.markers, strict=True)
            for f in figures_in(body)
        ]

    def release(self) -> tuple[str, list[tuple[int, Citation]]]:
        """The text of the unreleased parts, and the citations first needed by them."""
        fresh = " ".join(self.parts[self.released_parts :])
        text = f" {fresh}" if self.released_parts else fresh
        self.released_parts = len(self.parts)
        numbered = list(enumerate(self.citations, 1))[self.released_citations :]
        self.released_citations = len(self.citations)
        return text, numbered
