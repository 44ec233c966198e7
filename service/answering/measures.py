"""Evidence measures: does a sentence answer a question, does it support a claim.

Lexical evidence is the share of content terms (stemmed, stopwords removed) of the
question or claim that a sentence contains; dense evidence is embedding cosine.
Numbers are checked separately: a claim may only state numbers that its sentence
states, allowing for spaced and worded forms such as "18 10000" or "300 Ten thousand".
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from index import tokenize

__all__ = [
    "Figure",
    "Terms",
    "adds_to",
    "asks_several",
    "coverage",
    "entities_supported",
    "figures_in",
    "name_list_spans",
    "name_lists",
    "names_in",
    "names_supported",
    "number_value",
    "numbers_in",
    "numbers_supported",
    "terms",
]

Terms = frozenset[str]

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "hundred": 100, "thousand": 1_000,
    "million": 1_000_000, "billion": 1_000_000_000,
    # The multipliers of the languages answers are rendered in, so that a rendering's
    # "3 millions", "18万" or "300 Tausend" is checked as the figure it states.
    "millions": 1_000_000, "mille": 1_000, "milliard": 1_000_000_000,
    "milliards": 1_000_000_000, "tausend": 1_000, "millionen": 1_000_000,
    "milliarde": 1_000_000_000, "milliarden": 1_000_000_000, "mil": 1_000,
    "millones": 1_000_000, "millón": 1_000_000, "万": 10_000, "亿": 100_000_000, "千": 1_000,
}  # fmt: skip
_MULTIPLIERS = {word for word, value in _NUMBER_WORDS.items() if value >= 100}
_MAX_RUN = 4
# A CJK multiplier is a token of its own: "18万名" is 18, 万 and 名.
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[万亿千]|[^\W\d_]+", re.UNICODE)
# Thousands grouped by spaces, as French and German write them: "180 000", "3 000 000".
_GROUPED = re.compile(r"(?<![\d.,])\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?![\d])")


# A list of names: "China and South Korea", "Renault (Renault)、 Dacia (Dacia) and Alpine".
_NAME = r"[A-Z][\w-]*(?:\s+[A-Z][\w-]*)*(?:\s*\([^)]*\))?"
_NAMES = re.compile(rf"(?:{_NAME}\s*[,、;]\s*)*{_NAME}\s*,?\s+(?:and|or)\s+{_NAME}")
_LIST_SEPARATOR = re.compile(r"\s*(?:[,、;]|\band\b|\bor\b)\s*")
_GLOSS = re.compile(r"\s*\([^)]*\)")


_ASKS_SEVERAL = re.compile(
    r"^\s*(?:(?:(?:with|in|of|for|from|to|by|on|at|between|among)\s+)?(?:which|what)\s+|(?:name|list)\s+(?:the\s+|all\s+)?)"
    r"(?:(?:two|three|four|five|several|other|main|key|(?:kinds?|types?|sorts?)\s+of)\s+)?"
    r"(?!(?:is|was|has|does|its|this|his|us|as)\b)\w+[^s\W]s\b",
    re.IGNORECASE,
)


def asks_several(question: str) -> bool:
    """Whether a question asks for several things: "Which brands …?", "List the …"."""
    return bool(_ASKS_SEVERAL.search(question))


def name_list_spans(text: str) -> list[tuple[int, int, list[str]]]:
    """The lists of capitalised names in ``text``: each one's ``[start, end)`` and its items."""
    lists = []
    for found in _NAMES.finditer(text):
        items = [_GLOSS.sub("", item).strip() for item in _LIST_SEPARATOR.split(found[0])]
        lists.append((found.start(), found.end(), [item for item in items if item]))
    return lists


def name_lists(text: str) -> list[list[str]]:
    """The lists of capitalised names in ``text``, each as its items in order."""
    return [items for _, _, items in name_list_spans(text)]


@lru_cache(maxsize=65536)
def terms(text: str) -> Terms:
    """Stemmed content words of ``text``, numbers excluded."""
    return frozenset(tokenize(text))


def adds_to(question: str, text: str) -> bool:
    """Whether ``text`` says more than ``question``: a term or a figure the question lacks."""
    return bool(terms(text) - terms(question) or numbers_in(text) - numbers_in(question))


def coverage(needle: Terms, haystack: Terms, weights: Mapping[str, float] | None = None) -> float:
    """Share of ``needle`` found in ``haystack``, optionally weighted; 0 if ``needle`` is empty."""
    if not needle:
        return 0.0
    if weights is None:
        return len(needle & haystack) / len(needle)
    total = sum(weights.get(t, 1.0) for t in needle)
    return sum(weights.get(t, 1.0) for t in needle & haystack) / total


def number_value(token: str) -> float | None:
    """The value of a figure ("180,000") or number word ("ten"); None for other words."""
    if token[0].isdigit():
        plain = token.replace(",", "")
        try:
            return float(plain)
        except ValueError:
            return None
    return _NUMBER_WORDS.get(token)


@lru_cache(maxsize=65536)
def numbers_in(text: str) -> frozenset[float]:
    """Every number ``text`` states, including products of adjacent numbers and multipliers.

    "18 10000 employees" yields 18, 10000 and 180000; "300 Ten thousand" yields 300,
    10, 1000, 3000 and 3000000.
    """
    values: set[float] = set()
    run: list[float] = []
    for token in _TOKEN.findall(text.lower()):
        value = number_value(token)
        if value is None:
            run = []
            continue
        values.add(value)
        # Spoken figures combine at most a few adjacent numbers ("300 Ten thousand"); a longer
        # run (a table row, a list of years) would make this cubic for nothing.
        run = [*run[-(_MAX_RUN - 1) :], value]
        for width in range(2, len(run) + 1):
            values.add(math.prod(run[-width:]))
    values.update(float(_ungrouped(found)) for found in _GROUPED.findall(text))
    return frozenset(values)


@dataclass(frozen=True)
class Figure:
    """A figure written as a number and its multipliers: "18 10000", "300 Ten thousand"."""

    text: str
    start: int
    end: int
    value: float


# A number followed by multipliers: powers of ten written in digits ("18 10000", as the
# machine translation writes 18万) or in words ("300 Ten thousand").
_FIGURE = re.compile(
    r"(?<![\d.,])\d+(?:[.,]\d+)*"
    r"(?:\s+(?:10{2,}|ten|hundred|thousand|million|billion)\b)+",
    re.IGNORECASE,
)


def figures_in(text: str) -> list[Figure]:
    """The figures of ``text`` that need a rule to read, each with the value it states.

    "In the world with 18 10000 employees" holds 18 10000 (180,000); "nearly 300 Ten
    thousand units" holds 300 Ten thousand (3,000,000). Plain figures ("130", "2050")
    need no reading and are left out.
    """
    found = []
    for match in _FIGURE.finditer(text):
        tokens = match[0].split()
        values = [number_value(t.lower()) for t in tokens]
        if any(v is None for v in values):
            continue
        found.append(
            Figure(match[0], match.start(), match.end(), math.prod(v for v in values if v))
        )
    return found


def _ungrouped(figure: str) -> str:
    return "".join(figure.split())


def _stated_numbers(text: str) -> set[float]:
    # Only numbers the claim writes with digits must be backed: "the two sides"
    # and "one of" are ordinary words, not figures.
    found: set[float] = set()
    text = _GROUPED.sub(lambda m: _ungrouped(m[0]), text)
    tokens = _TOKEN.findall(text.lower())
    for i, token in enumerate(tokens):
        if token[0].isdigit() and (value := number_value(token)) is not None:
            following = tokens[i + 1] if i + 1 < len(tokens) else ""
            if following in _MULTIPLIERS:
                value *= _NUMBER_WORDS[following]
            found.add(value)
    return found


def numbers_supported(claim: str, source: str) -> bool:
    """True when every figure the claim states is one ``source`` states."""
    available = numbers_in(source)
    return all(
        any(math.isclose(n, a, rel_tol=1e-9) for a in available) for n in _stated_numbers(claim)
    )


_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w-]*")


def entities_supported(claim: str, source: str, question: str) -> bool:
    """True when every capitalised word inside the claim appears in the source or question.

    Names the model invents ("Li Shufu", "Busan") are the commonest unsupported
    claims; a sentence-initial capital is ordinary and is not checked.
    """
    known = (source + " " + question).lower()
    return all(word.lower() in known for word in _CAPITALISED.findall(claim.strip()))


_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")


def names_in(text: str) -> list[str]:
    """The capitalised words of ``text``, wherever they stand, stopwords ("The", "In") aside."""
    return [word for word in _WORD.findall(text) if word[0].isupper() and tokenize(word)]


def names_supported(text: str, source: str, question: str) -> bool:
    """Whether every capitalised word of ``text`` is in ``source`` or ``question``.

    Stricter than :func:`entities_supported`: a sentence-initial word counts, so that a
    rendering that opens on an invented name ("Ferrari a renforcé …") is caught.
    """
    known = f"{source} {question}".lower()
    return all(word.lower() in known for word in names_in(text))
