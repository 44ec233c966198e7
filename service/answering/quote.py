"""Quotes: the words of a reply aligned back to its source sentence, with exact offsets.

A shown claim is a span of its cited sentence, never the model's own wording, so it can
state only what the sentence states: a relation the model turned around ("the models
underpin the platform") or a name it added cannot survive, because the shown words are
the source's words in the source's order. The model's reply only chooses the sentence
and which part of it answers.

Alignment ignores case, spacing and punctuation (the model writes "180,000" or
"technologies" where the source has "18 10000" or "technology"), and picks the span of
the sentence that best covers the reply's words, weighting the words that do not merely
repeat the question.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from index import CJK, CJK_CHAR, stem_words
from service.answering.measures import number_value

__all__ = ["Quote", "align"]

# A word, a figure, or one CJK character (CJK has no spaces to split on).
_WORD = re.compile(rf"[{CJK}]|\d+(?:[.,]\d+)*|[^\W\d_{CJK}]+", re.UNICODE)
_MAX_RUN = 3  # "300 Ten thousand": a figure written as a few numbers in a row
_MULTIPLIERS = frozenset({100.0, 1_000.0, 1_000_000.0, 1_000_000_000.0})
_FUNCTION = frozenset(
    {"a", "an", "the", "of", "in", "on", "at", "to", "for", "by", "with", "and", "or", "is",
     "are", "was", "were", "be", "been", "will", "has", "have", "had", "its", "it", "their",
     "this", "that", "which", "who", "whom", "whose", "from", "as", "into", "than"}
)  # fmt: skip
_QUESTION_WEIGHT = 0.3  # a reply word that repeats the question says little about the answer
_FUNCTION_WEIGHT = 0.1
_FIGURE_WEIGHT = 2.0  # a figure the reply states is most often what was asked
# Share of the reply's answer words a quote must hold: the model pads its claims with
# words of its own ("approximately", "worldwide") that no span holds.
_MIN_RECALL = 1 / 3
_CLOSERS = ")]\u201d\u2019\"'%"  # kept with the word before them


@dataclass(frozen=True)
class Quote:
    """A span of a source sentence: ``source[start:end] == text``."""

    text: str
    start: int  # offsets into the sentence, not the document
    end: int
    recall: float  # weighted share of the reply's words the span holds


def _words(text: str) -> list[tuple[str, int, int]]:
    """Each word's matching key and its ``[start, end)`` in ``text``."""
    found = [(m.group().lower(), m.start(), m.end()) for m in _WORD.finditer(text)]
    stems = stem_words([w for w, _, _ in found])
    return [(stem, s, e) for stem, (_, s, e) in zip(stems, found, strict=True)]


def _figure_key(value: float) -> str:
    return f"#{value:g}"


def _reply_figures(words: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """The reply's words with each figure keyed by its value ("3 million" as one word)."""
    merged: list[tuple[str, int, int]] = []
    for word, start, end in words:
        value = number_value(word)
        if value is None:
            merged.append((word, start, end))
            continue
        if merged and word.isalpha() and value in _MULTIPLIERS and merged[-1][0][0] == "#":
            previous = float(merged[-1][0][1:])
            merged[-1] = (_figure_key(previous * value), merged[-1][1], end)
        else:
            merged.append((_figure_key(value), start, end))
    return merged


def _source_figures(
    words: list[tuple[str, int, int]], figures: set[str]
) -> list[tuple[str, int, int]]:
    """The source's words with each figure keyed by its value, a run of numbers as one.

    The source writes 180,000 as "18 10000" and 3 million as "300 Ten thousand": a run
    whose product is a figure of the reply becomes one word, shown as written.
    """
    merged: list[tuple[str, int, int]] = []
    i = 0
    while i < len(words):
        value = number_value(words[i][0])
        if value is None:
            merged.append(words[i])
            i += 1
            continue
        taken, key, product = i, _figure_key(value), value
        for k in range(i + 1, min(i + _MAX_RUN, len(words))):
            following = number_value(words[k][0])
            if following is None:
                break
            product *= following
            if _figure_key(product) in figures:
                taken, key = k, _figure_key(product)
        merged.append((key, words[i][1], words[taken][2]))
        i = taken + 1
    return merged


def _weight(word: str, asked: frozenset[str]) -> float:
    if word in _FUNCTION:
        return _FUNCTION_WEIGHT
    if word in asked:
        return _QUESTION_WEIGHT
    return _FIGURE_WEIGHT if word[0] == "#" else 1.0


def _closing(source: str, end: int) -> int:
    """Extend a span over the closing brackets, quote marks or percent sign right after it."""
    while end < len(source) and source[end] in _CLOSERS:
        end += 1
    return end


def _opening(source: str, start: int, end: int) -> int:
    """Extend a span back over the opening bracket or quote its closing one needs."""
    if start == 0:
        return start
    before, text = source[start - 1], source[start:end]
    pairs = {"(": ")", "[": "]", "\u201c": "\u201d", "\u2018": "\u2019", '"': '"'}
    closer = pairs.get(before)
    if closer is None:
        return start
    if closer == before:  # a straight quote: the span holds an odd number of them
        needed = text.count(closer) % 2 == 1
    else:
        needed = text.count(closer) > text.count(before)
    return start - 1 if needed else start


def align(reply: str, source: str, question: str = "") -> Quote | None:
    """The span of ``source`` that best matches ``reply``; None if none holds enough of it.

    The span starts and ends on words of the reply, and is chosen by F1 between the
    reply's weighted words and the span's words. None when the best span holds less
    than a third of the reply's words that do not repeat the question, or none of them.
    """
    asked = frozenset(w for w, _, _ in _reply_figures(_words(question)))
    wanted: dict[str, float] = {}
    # How many of each word the reply holds: a CJK word is one character, and Chinese
    # repeats characters ("后轮驱动和四轮驱动"); any other word counts once.
    counts: Counter[str] = Counter()
    for word, _, _ in _reply_figures(_words(reply)):
        wanted[word] = _weight(word, asked)
        counts[word] = counts[word] + 1 if CJK_CHAR.match(word) else 1
    answer_words = {w for w, weight in wanted.items() if weight >= 1.0}
    words = _source_figures(_words(source), {w for w in wanted if w[0] == "#"})
    hits = [i for i, (w, _, _) in enumerate(words) if w in wanted]
    if not answer_words or not hits:
        return None
    total = sum(wanted[w] * n for w, n in counts.items())
    upto = [0.0]  # upto[k]: the weight of the source's first k words
    for w, _, _ in words:
        upto.append(upto[-1] + _weight(w, asked))
    best: tuple[float, int, int, float] | None = None
    for a, i in enumerate(hits):
        held: Counter[str] = Counter()
        got, answering = 0.0, False
        for j in hits[a:]:
            word = words[j][0]
            if held[word] < counts[word]:
                held[word] += 1
                got += wanted[word]
            answering = answering or word in answer_words
            if not answering:
                continue
            span_weight = upto[j + 1] - upto[i]
            recall = got / total
            precision = got / span_weight
            f1 = 2 * precision * recall / (precision + recall)
            if best is None or f1 > best[0]:
                best = (f1, i, j, recall)
    if best is None:
        return None
    _, i, j, recall = best
    # A quote neither starts nor ends on a function word ("on Lingke …"), nor starts on
    # words that only repeat the question ("share resources …" to "What will they share?";
    # at its end they finish a phrase: "spirit of open cooperation").
    while i < j and _weight(words[i][0], asked) < 1.0:
        i += 1
    while j > i and words[j][0] in _FUNCTION:
        j -= 1
    unit = words[j + 1][0] if j + 1 < len(words) else ""
    if words[j][0][0] == "#" and unit.isalpha() and unit not in _FUNCTION:
        j += 1  # a figure keeps its unit: "18 10000 employees", "20 Years"
    span_words = {w for w, _, _ in words[i : j + 1]}
    answer_recall = len(answer_words & span_words) / len(answer_words)
    if answer_recall < _MIN_RECALL:
        return None
    start, end = words[i][1], _closing(source, words[j][2])
    start = _opening(source, start, end)
    return Quote(source[start:end], start, end, round(recall, 4))
