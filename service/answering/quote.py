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
from service.answering.measures import asks_several, name_list_spans, number_value

__all__ = ["Quote", "align", "closed"]

# A word, a figure, or one CJK character (CJK has no spaces to split on).
_WORD = re.compile(rf"[{CJK}]|\d+(?:[.,]\d+)*|[^\W\d_{CJK}]+", re.UNICODE)
_MAX_RUN = 3  # "300 Ten thousand": a figure written as a few numbers in a row
_MULTIPLIERS = frozenset({100.0, 1_000.0, 1_000_000.0, 1_000_000_000.0})
_FUNCTION = frozenset(
    {"a", "an", "the", "of", "in", "on", "at", "to", "for", "by", "with", "and", "or", "is",
     "are", "was", "were", "be", "been", "will", "has", "have", "had", "its", "it", "their",
     "this", "that", "which", "who", "whom", "whose", "from", "as", "into", "than"}
)  # fmt: skip
# Words that leave a phrase dangling when it ends on them ("Rotterdam, where he").
_DANGLING = frozenset(
    {"where", "when", "while", "but", "because", "although", "though", "if", "so", "not",
     "also", "such", "then", "there", "he", "she", "they", "we", "i", "you", "his", "her",
     "our", "these", "those", "after", "before", "about", "since", "until", "can", "may",
     "would", "could", "should", "must", "do", "does", "did", "being", "many", "more",
     "most", "much", "some", "few", "several", "all", "each", "every", "other", "only",
     "just", "nearly", "almost", "over", "under"}
)  # fmt: skip
# Words that join a phrase to what came before it, and so cannot start one ("so oxygen
# supplementation is used").
_CONNECTIVES = frozenset(
    {"so", "but", "yet", "thus", "hence", "therefore", "however", "also", "then", "moreover"}
)
_CLAUSE_BREAKS = ",;:\u2014\u2013"
_CLAUSE_REACH = 2  # words a paraphrase's span may grow by to end where its clause ends
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
    copied: bool = False  # the reply copies the span word for word


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


_PAIRS = {")": "(", "]": "[", "\u201d": "\u201c", "\u2019": "\u2018"}  # closer: opener


def closed(source: str, start: int, end: int) -> int:
    """Extend a span over the closers right after it that it opens, and a percent sign.

    "Great Fire of 1901" keeps its closing quote when it holds the opening one; "Euler" in
    "(especially Euler)" does not take the bracket of a phrase it starts inside.
    """
    while end < len(source) and source[end] in _CLOSERS:
        closer, text = source[end], source[start:end]
        opener = _PAIRS.get(closer)
        if opener is not None and text.count(opener) <= text.count(closer):
            break
        if closer in "\"'" and text.count(closer) % 2 == 0:
            break
        end += 1
    return end


def _enclosed(source: str, start: int, end: int) -> tuple[int, int]:
    """Widen a span that a pair of brackets or quotes encloses exactly: "Great Fire of 1901"."""
    if start > 0 and end < len(source):
        before, after = source[start - 1], source[end]
        if _PAIRS.get(after) == before or (before == after and before in "\"'"):
            return start - 1, end + 1
    return start, end


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


def _copy(
    reply_words: list[tuple[str, int, int]], words: list[tuple[str, int, int]]
) -> tuple[int, int] | None:
    """The first and last source word of the reply copied word for word, if it is a copy.

    Function words and punctuation are skipped on both sides: "the opening strategy of
    Geely" copies "opening strategy of Geely Holding" up to "Geely".
    """
    wanted = [w for w, _, _ in reply_words if w not in _FUNCTION]
    content = [k for k, (w, _, _) in enumerate(words) if w not in _FUNCTION]
    keys = [words[k][0] for k in content]
    n = len(wanted)
    if not n:
        return None
    for m in range(len(keys) - n + 1):
        if keys[m : m + n] == wanted:
            return content[m], content[m + n - 1]
    return None


def _capitalised(source: str, word: tuple[str, int, int]) -> bool:
    return source[word[1]].isupper()


def _joined(source: str, left: tuple[str, int, int], right: tuple[str, int, int]) -> bool:
    """Whether two words stand side by side, with only spaces between them."""
    return not source[left[2] : right[1]].strip()


def _name_run(source: str, words: list[tuple[str, int, int]], i: int) -> int:
    """The last word of the run of capitalised words, side by side, that starts at ``i``."""
    j = i
    while (
        j + 1 < len(words)
        and _capitalised(source, words[j + 1])
        and _joined(source, words[j], words[j + 1])
    ):
        j += 1
    return j


def _trim(
    source: str, words: list[tuple[str, int, int]], i: int, j: int, asked: frozenset[str]
) -> tuple[int, int]:
    """Drop function words and words that only repeat the question from a span's edges.

    A span never starts on a connective ("so", "however"): it belongs to the clause before.
    A name is never cut: "Renault Samsung" keeps "Renault" though the question names
    Renault, because the name goes on past it. At the end, words of the question stay
    ("spirit of open cooperation"); words that leave the phrase dangling go.
    """
    while i < j and (_weight(words[i][0], asked) < 1.0 or words[i][0] in _CONNECTIVES):
        if _capitalised(source, words[i]) and words[i][0] not in _FUNCTION:
            run = _name_run(source, words, i)
            if any(_weight(w, asked) >= 1.0 for w, _, _ in words[i : min(run, j) + 1]):
                break  # a name that goes on past the question's words
        i += 1
    while j > i and (words[j][0] in _FUNCTION or words[j][0] in _DANGLING):
        j -= 1
    return i, j


def _breaks(source: str, left: tuple[str, int, int], right: tuple[str, int, int]) -> bool:
    """Whether a clause ends between two words ("market , Share resources")."""
    return any(ch in _CLAUSE_BREAKS for ch in source[left[2] : right[1]])


def _clause_edges(
    source: str, words: list[tuple[str, int, int]], i: int, j: int
) -> tuple[int, int]:
    """Move the edges of a span the reply does not copy onto the clause edges near them.

    The words a paraphrase shares with its sentence can start a span on the last word of
    one clause ("market , Share resources …") and end it a word short of the next clause's
    end ("… as key"): a start within two words of a clause break moves past it, and an end
    within two words of one moves up to it.
    """
    for k in range(i, min(i + 2, j)):
        if _breaks(source, words[k], words[k + 1]):
            i = k + 1
            break
    for k in range(j, min(j + _CLAUSE_REACH, len(words) - 1) + 1):
        if k == len(words) - 1 or _breaks(source, words[k], words[k + 1]):
            j = k
            break
    return i, j


def _acronym(source: str, word: tuple[str, int, int]) -> bool:
    """Whether a word is written in capitals, as names like "CMA" or "LADA" are."""
    written = source[word[1] : word[2]]
    return len(written) >= 2 and written.isalpha() and written.isupper()


def _whole_name(source: str, words: list[tuple[str, int, int]], i: int) -> int:
    """Move a span's start back to the start of the name it starts inside."""
    while (
        i > 1  # a sentence's first word is capitalised anyway
        and _capitalised(source, words[i])
        and _capitalised(source, words[i - 1])
        and words[i - 1][0] not in _FUNCTION
        and _joined(source, words[i - 1], words[i])
    ):
        i -= 1
    return i


def _whole_lists(source: str, start: int, end: int) -> tuple[int, int]:
    """Widen a span that holds some items of a list of names to the whole list."""
    for list_start, list_end, items in name_list_spans(source):
        held = [item in source[start:end] for item in items]
        if list_start < end and start < list_end and any(held) and not all(held):
            start, end = min(start, list_start), max(end, list_end)
    return start, end


def align(reply: str, source: str, question: str = "", *, statement: bool = False) -> Quote | None:
    """The span of ``source`` that best matches ``reply``; None if none holds enough of it.

    A reply copied from the source word for word (function words and punctuation aside)
    is that span. Otherwise the span starts and ends on words of the reply, and is chosen
    by F1 between the reply's weighted words and the span's words. None when the best span
    holds less than a third of the reply's words that do not repeat the question, or none
    of them. Either way the span's edges are phrase edges: it does not start inside a
    name, end on a word that leaves it dangling, drop a figure's unit, or, for a question
    asking for several things, hold only part of a list of names.

    A ``statement`` (what a yes/no question's reply restates: "Renault group is allied with
    Nissan") is quoted as the evidence for it: from the first to the last of its words
    that the sentence holds, not the few it holds most densely.
    """
    asked = frozenset(w for w, _, _ in _reply_figures(_words(question)))
    reply_words = _reply_figures(_words(reply))
    wanted: dict[str, float] = {}
    # How many of each word the reply holds: a CJK word is one character, and Chinese
    # repeats characters ("后轮驱动和四轮驱动"); any other word counts once.
    counts: Counter[str] = Counter()
    for word, _, _ in reply_words:
        wanted[word] = _weight(word, asked)
        counts[word] = counts[word] + 1 if CJK_CHAR.match(word) else 1
    answer_words = {w for w, weight in wanted.items() if weight >= 1.0}
    words = _source_figures(_words(source), {w for w in wanted if w[0] == "#"})
    if not answer_words:
        return None
    total = sum(wanted[w] * n for w, n in counts.items())
    copied = _copy(reply_words, words)
    if copied is not None:
        i, j = copied
        recall = 1.0
    else:
        found = _best_span(words, wanted, counts, answer_words, total, asked)
        if found is None:
            return None
        i, j, recall = found
        if statement:
            held = [k for k, (w, _, _) in enumerate(words) if w in answer_words]
            i, j = held[0], held[-1]
        i, j = _clause_edges(source, words, i, j)
    i, j = _trim(source, words, i, j, asked)
    i = _whole_name(source, words, i)
    while (
        j + 1 < len(words)
        and _acronym(source, words[j + 1])
        and _joined(source, words[j], words[j + 1])
    ):
        j += 1  # "Lingke energy saving platform" is named by the "CMA" after it
    unit = words[j + 1] if j + 1 < len(words) else None
    if words[j][0][0] == "#" and unit is not None and _is_unit(source, words[j], unit):
        j += 1  # a figure keeps its unit: "18 10000 employees", "20 Years"
    span_words = {w for w, _, _ in words[i : j + 1]}
    answer_recall = len(answer_words & span_words) / len(answer_words)
    if answer_recall < _MIN_RECALL:
        return None
    start, end = words[i][1], words[j][2]
    if asks_several(question):
        start, end = _whole_lists(source, start, end)
    start, end = _enclosed(source, start, end)
    start = _opening(source, start, end)
    end = closed(source, start, end)
    return Quote(source[start:end], start, end, round(recall, 4), copied is not None)


def _is_unit(source: str, figure: tuple[str, int, int], unit: tuple[str, int, int]) -> bool:
    """Whether the word after a figure is its unit ("employees"), not the next clause.

    A year has no unit: "2050 Achieve the goal" starts a new clause.
    """
    word = unit[0]
    if not word.isalpha() or word in _FUNCTION or word in _DANGLING:
        return False
    if not _joined(source, figure, unit):
        return False
    value = float(figure[0][1:])
    written = source[figure[1] : figure[2]]
    return not (written.isdigit() and len(written) == 4 and 1000 <= value <= 2100)


def _best_span(
    words: list[tuple[str, int, int]],
    wanted: dict[str, float],
    counts: Counter[str],
    answer_words: set[str],
    total: float,
    asked: frozenset[str],
) -> tuple[int, int, float] | None:
    """The span of ``words`` between two reply words with the best weighted F1."""
    hits = [i for i, (w, _, _) in enumerate(words) if w in wanted]
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
    return None if best is None else (best[1], best[2], best[3])
