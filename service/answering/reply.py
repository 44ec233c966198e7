"""Read the LLM's reply: cut it into claims, each with the source labels it gave.

The reply arrives token by token. A claim is complete once the label after it (``[S3]``)
has arrived, or once the reply ends; only complete claims leave the parser, so nothing
downstream ever sees half a sentence or half a label.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from index import split_spans

__all__ = ["Claim", "ReplyParser", "claims_of"]

_REFUSAL = re.compile(
    r"\bnot\s+found\b|\b(?:does|do|did)\s+not\s+(?:say|mention|state|specify|provide|contain)"
    r"|\bnot\s+(?:mentioned|stated|specified|provided|available)\b|\bno\s+information\b"
    r"|\bcannot\s+(?:be\s+)?(?:determined|answered|found)\b",
    re.IGNORECASE,
)
_LABELS = re.compile(r"\s*[\[(]\s*S?\s*\d+(?:\s*[,;]\s*S?\s*\d+)*\s*[\])]")
_LABEL_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True)
class Claim:
    """One sentence of the reply, with the context sentences the model labelled for it."""

    text: str
    hints: frozenset[int]  # indices into CorpusIndex.sentences


def _claims(reply: str, labelled: list[int]) -> Iterator[Claim]:
    pieces = _LABELS.split(reply)
    labels = _LABELS.findall(reply)
    for i, piece in enumerate(pieces):
        hint_numbers = [int(n) for n in _LABEL_NUMBER.findall(labels[i])] if i < len(labels) else []
        hints = frozenset(labelled[n - 1] for n in hint_numbers if 1 <= n <= len(labelled))
        spans = split_spans(piece)
        for j, (start, end) in enumerate(spans):
            text = piece[start:end].strip(" \t\n-*•")
            if text and any(ch.isalnum() for ch in text):
                yield Claim(text, hints if j == len(spans) - 1 else frozenset())


def claims_of(reply: str, context: list[int]) -> list[Claim]:
    """The reply's claims, less those that only say the sources do not answer.

    ``context`` maps the prompt's ``[S<n>]`` labels (1-based) to sentence indices.
    """
    return [c for c in _claims(reply, context) if not _REFUSAL.search(c.text)]


class ReplyParser:
    """Turns streamed tokens into complete claims, each handed out once."""

    def __init__(self, context: list[int]) -> None:
        self.context = context
        self.raw = ""
        self._labelled_upto = 0  # end of the last label seen
        self._handed_out = 0

    def feed(self, token: str) -> list[Claim]:
        """Take one token; return the claims that a label has just completed."""
        self.raw += token
        last_end = None
        for label in _LABELS.finditer(self.raw, self._labelled_upto):
            last_end = label.end()
        if last_end is None or last_end <= self._labelled_upto:
            return []
        self._labelled_upto = last_end
        return self._fresh(self.raw[:last_end])

    @property
    def refused(self) -> bool:
        """Whether the reply says the sources do not answer."""
        return bool(_REFUSAL.search(self.raw))

    def finish(self) -> list[Claim]:
        """The reply is complete; return its remaining claims."""
        return self._fresh(self.raw)

    def _fresh(self, text: str) -> list[Claim]:
        claims = claims_of(text, self.context)
        fresh = claims[self._handed_out :]
        self._handed_out = len(claims)
        return fresh
