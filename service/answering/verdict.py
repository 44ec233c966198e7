"""Yes/no questions: the verdict that opens their answer, judged on the cited sentences.

The reply's own "Yes," or "No," is not trusted, as its labels are not: it is taken off the
claim before the claim is verified. The judge is then asked yes, no or unknown about the
sentences the answer cites (``prompts/verdict.md``): P(yes) + P(no) is the answer's support
in place of the support judge's (which, asked whether a text "states the answer" to a
yes/no question, mostly says no), and the likelier of yes and no is the verdict. The
verdict is one of a fixed pair of words per language, marked in the response's
``verdict``; every other shown word is still a quote.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from index import tokenize
from service.answering.judge import first_token_alternatives
from service.answering.measures import adds_to, number_value, numbers_supported, terms
from service.answering.prompts import render_verdict_prompt
from service.answering.quote import closed
from service.llm import ChatModel
from service.schemas import Verdict

__all__ = [
    "VERDICT_WORDS",
    "Judged",
    "Otherwise",
    "asks_yes_or_no",
    "credits_unstated",
    "judge_verdict",
    "read_verdict",
    "settling_clauses",
    "stated_otherwise",
    "states_other_figures",
    "through_the_asked",
    "with_verdict",
    "without_verdict",
]

_YES_NO = re.compile(
    r"^\s*(?:is|are|was|were|am|do|does|did|has|have|had|can|could|will|would|shall"
    r"|should|may|might|must|isn't|aren't|wasn't|weren't|doesn't|don't|didn't|hasn't"
    r"|haven't|won't|can't)\b",
    re.IGNORECASE,
)
# "Yes, …", "No: …", or a bare "Yes" / "No": the reply's own verdict.
_REPLY_VERDICT = re.compile(r"^\s*(?:yes|no)\b(?:\s*[,.:;!\u2014-]+\s*|\s*$)", re.IGNORECASE)
VERDICT_WORDS: dict[str, dict[Verdict, str]] = {
    "en": {"yes": "Yes", "no": "No"},
    "fr": {"yes": "Oui", "no": "Non"},
    "de": {"yes": "Ja", "no": "Nein"},
    "es": {"yes": "Sí", "no": "No"},
    "zh": {"yes": "是", "no": "否"},
    "ja": {"yes": "はい", "no": "いいえ"},
}


def asks_yes_or_no(question: str) -> bool:
    """Whether an English question is answered by yes or no ("Does …?", "Is …?")."""
    return bool(_YES_NO.match(question)) and " or " not in question.lower()


def without_verdict(claim: str) -> str:
    """A reply's claim without the "Yes," or "No," it opens with."""
    return _REPLY_VERDICT.sub("", claim, count=1)


@dataclass(frozen=True)
class Otherwise:
    """The words of a sentence that state otherwise than a yes/no question's premise."""

    sentence: int  # which of the sentences asked about
    start: int  # [start, end) of those words in it
    end: int


@dataclass(frozen=True)
class Judged:
    """A yes/no question judged on sentences: whether they settle it, and which way."""

    support: float  # P(yes) + P(no): the sentences settle the question either way
    verdict: Verdict
    otherwise: Otherwise | None = None  # the words that make it no, when a rule found them


def states_other_figures(question: str, sentences: Sequence[str]) -> bool:
    """Whether a yes/no question states a figure its sentences do not ("2030" for "2050").

    The small judge says yes to most such false premises; a figure the sentences do not
    state is no premise they bear out, so the verdict is no.
    """
    return not any(numbers_supported(question, sentence) for sentence in sentences)


_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+")
_RUN = 3  # words the question and the sentence share before the names they give differ
_NAME_WINDOW = 8  # words after the shared run where the sentence may still give the name
_COUNT_GAP = 1  # words that may stand between a count and what it counts ("130 Many countries")


# "developed by Renault", "made by Geely Holding Group": whom a question credits with a deed.
_CREDITED = re.compile(r"\bby\s+([A-Z][\w-]*(?:\s+[A-Z][\w-]*)*)")
_BY = re.compile(r"\bby\b", re.IGNORECASE)
_CREDIT_WINDOW = 4  # words after a sentence's "by" where the name credited may stand


def credits_unstated(question: str, sentences: Sequence[str]) -> bool:
    """Whether a yes/no question credits a deed to a name that no sentence credits it to.

    "Is Geely based on the CMA platform developed by Renault?" asked of "… will be based on
    Lingke energy saving platform CMA …": no sentence says by whom, so the text does not
    settle the question, whatever the small judge says (it sees the question's words).
    """
    credited = [m[1].split() for m in _CREDITED.finditer(question)]
    if not credited:
        return False
    after_by = [
        {w.lower() for w in _TOKEN.findall(sentence[m.end() :])[:_CREDIT_WINDOW]}
        for sentence in sentences
        for m in _BY.finditer(sentence)
    ]
    return not all(
        any({w.lower() for w in name} & following for following in after_by) for name in credited
    )


def stated_otherwise(question: str, sentences: Sequence[str]) -> Otherwise | None:
    """The first sentence's words that state otherwise than the question, by two rules.

    - Another count of the same thing: "ten brands" where the sentence has "five brands".
    - Another name in the same frame: "… the platform technology of Renault" where the
      sentence goes on "… the platform technology of Geely Holding Group", and does not
      give the question's name in the words that follow.
    - A list that leaves the name out: "Is Nissan a brand of Renault group?" where the
      sentence counts the brands and names them ("five brands ―― Renault (Renault)、 …
      Alpine and Mobilize") without Nissan.

    The small judge says yes to both (it sees the question's words in the sentence); a
    sentence that states otherwise settles the question as no.
    """
    asked = _tokens(question)
    for k, sentence in enumerate(sentences):
        words = _tokens(sentence)
        span = _other_count(asked, words) or _other_name(asked, words)
        span = span or _not_listed(asked, words)
        if span is not None:
            return Otherwise(k, *span)
    return None


_Token = tuple[str, int, int]  # the word as written, its [start, end)


def _tokens(text: str) -> list[_Token]:
    return [(m[0], m.start(), m.end()) for m in _TOKEN.finditer(text)]


def _counts(words: list[_Token]) -> list[tuple[float, str, int, int]]:
    """Each count and the stem of what it counts, with the [start, end) of both.

    A run of numbers is one count ("18 10000", "300 Ten thousand"); "one" is left out, as
    it is mostly no count ("one of the …").
    """
    found = []
    i = 0
    while i < len(words):
        value = _count_value(words[i][0])
        if value is None:
            i += 1
            continue
        start, j = words[i][1], i + 1
        while j < len(words) and (more := _count_value(words[j][0])) is not None:
            value, j = value * more, j + 1
        for counted, _, end in words[j : j + 1 + _COUNT_GAP]:
            if stems := tokenize(counted):
                found.append((value, stems[0], start, end))
                break
        i = j
    return found


def _count_value(word: str) -> float | None:
    lowered = word.lower()
    return None if lowered == "one" else number_value(lowered)


def _other_count(asked: list[_Token], words: list[_Token]) -> tuple[int, int] | None:
    counts = _counts(words)
    for value, counted, _, _ in _counts(asked):
        same = [(v, start, end) for v, c, start, end in counts if c == counted]
        if same and not any(math.isclose(v, value) for v, _, _ in same):
            return same[0][1], same[0][2]
    return None


_AND = frozenset({"and", "or"})


def _not_listed(asked: list[_Token], words: list[_Token]) -> tuple[int, int] | None:
    """The count and the list of names it gives, when the question's name is not among them."""
    asked_stems = {stem for word, _, _ in asked for stem in tokenize(word)}
    in_sentence = {w.lower() for w, _, _ in words}
    names = [w for w, _, _ in asked[1:] if w[0].isupper() and w.lower() not in in_sentence]
    if not names:
        return None
    for _, counted, start, end in _counts(words):
        if counted not in asked_stems:
            continue
        at = next(k for k, (_, _, word_end) in enumerate(words) if word_end == end)
        listed = _listed_names(words, at + 1)
        if len(listed) >= 2:
            return start, words[listed[-1]][2]
    return None


def _listed_names(words: list[_Token], at: int) -> list[int]:
    """The positions of the names listed from ``at`` on, up to the name after "and" or "or"."""
    listed: list[int] = []
    closing = False  # "and" seen: the name after it is the last
    for k in range(at, len(words)):
        word = words[k][0]
        if word.lower() in _AND and listed:
            closing = True
        elif word[0].isupper():
            listed.append(k)
            if closing:
                break
        else:
            break
    return listed


def _other_name(asked: list[_Token], words: list[_Token]) -> tuple[int, int] | None:
    lowered_q = [w.lower() for w, _, _ in asked]
    lowered_s = [w.lower() for w, _, _ in words]
    shared = SequenceMatcher(None, lowered_q, lowered_s, autojunk=False).get_matching_blocks()
    for i, j, run in shared:
        if run < _RUN or not tokenize(" ".join(lowered_q[i : i + run])):
            continue  # too short, or function words only ("of the")
        name = {w.lower() for w in _name_at(asked, i + run)}
        other = _name_at(words, j + run)
        following = set(lowered_s[j + run : j + run + _NAME_WINDOW])
        if (
            name
            and other
            and name.isdisjoint(following)
            and not {w.lower() for w in other} & set(lowered_q)
        ):
            return words[j][1], words[j + run + len(other) - 1][2]
    return None


def _name_at(words: list[_Token], at: int) -> list[str]:
    """The capitalised words from ``at`` on: a name ("Geely Holding Group")."""
    name = []
    for word, _, _ in words[at:]:
        if not word[0].isupper():
            break
        name.append(word)
    return name


# Where a quote's clauses meet: " , " (the article's spacing), ", ", "，", ";".
_CLAUSE = re.compile(r"\s*[,;，；]\s*")


def settling_clauses(quote: str, question: str) -> str:
    """``quote`` without the clauses at its edges that do not bear on a yes/no question.

    A clause bears on it when it holds one of the question's terms. Of two that do, one
    at an edge that only repeats the question is left out too: "Renault group and Geely
    Holding Group , The two sides have signed a memorandum of understanding (MoU)" is
    quoted from "The two sides" for "Did Renault group and Geely Holding Group sign a
    memorandum of understanding?". The result is a span of ``quote``; a quote none of whose
    clauses bears on the question is kept whole.
    """
    asked = terms(question)
    edges = [0, *(e for m in _CLAUSE.finditer(quote) for e in (m.start(), m.end())), len(quote)]
    clauses = [(edges[k], edges[k + 1]) for k in range(0, len(edges), 2)]
    bearing = [(start, end) for start, end in clauses if terms(quote[start:end]) & asked]
    if not bearing:
        return quote
    while len(bearing) > 1 and not adds_to(question, quote[slice(*bearing[0])]):
        bearing.pop(0)
    while len(bearing) > 1 and not adds_to(question, quote[slice(*bearing[-1])]):
        bearing.pop()
    return quote[bearing[0][0] : bearing[-1][1]]


_TAIL_MIN = 3  # words a yes quote's tail must have to be cut: "(MoU)" stays


def through_the_asked(quote: str, question: str) -> str:
    """A yes answer's quote up to the last word the question asks about.

    "two sides will jointly develop Renault brand hybrid models based on the platform
    technology of Geely Holding Group" is quoted to "… hybrid models" for "Will the two sides
    develop Renault brand hybrid models?": what follows says more than was asked. A name
    that word starts is kept whole, a list of names too, and a tail of fewer than three words
    is kept. Not for a no, whose tail may be what makes it no ("based in Paris" for "… based
    in Lyon?").
    """
    asked = terms(question)
    words = _tokens(quote)
    last = max((k for k, (word, _, _) in enumerate(words) if terms(word) & asked), default=None)
    if last is None:
        return quote
    if words[last][0][0].isupper():  # "Geely Holding Group", "Nissan and Mitsubishi"
        last = _listed_names(words, last)[-1]
    if len(words) - 1 - last < _TAIL_MIN:
        return quote
    return quote[: closed(quote, 0, words[last][2])]


def read_verdict(top: Sequence[tuple[str, float]]) -> Judged | None:
    """The judgement in a reply's first token alternatives; None without any."""
    yes = no = unknown = 0.0
    for token, logprob in top:
        word = token.strip().lower()
        if not word:
            continue
        if word.startswith("yes"):
            yes += math.exp(logprob)
        elif word == "no":
            no += math.exp(logprob)
        elif len(word) >= 2 and "unknown".startswith(word):
            unknown += math.exp(logprob)
    total = yes + no + unknown
    if total <= 0:
        return None
    return Judged(round((yes + no) / total, 4), "yes" if yes >= no else "no")


async def judge_verdict(
    llm: ChatModel,
    sentences: Sequence[str],
    question: str,
    deadline: float,
    timings: dict[str, float],
    name: str = "verdict",
) -> Judged | None:
    """Whether ``sentences`` settle a yes/no question, and which way; None on no judgement."""
    otherwise = stated_otherwise(question, sentences)
    contradicted = otherwise is not None or states_other_figures(question, sentences)
    if not contradicted and credits_unstated(question, sentences):
        # The sentences do not say by whom: unsettled, whatever the judge would say.
        return Judged(0.0, "no")
    messages = render_verdict_prompt(list(sentences), question)
    top = await first_token_alternatives(llm, messages, deadline, timings, name)
    judged = None if top is None else read_verdict(top)
    if judged is None:
        return None
    return Judged(judged.support, "no", otherwise) if contradicted else judged


def with_verdict(answer: str, verdict: Verdict, language: str) -> str:
    """The answer text opened by its verdict in the asker's language: "No: five brands [1]."."""
    word = VERDICT_WORDS.get(language, VERDICT_WORDS["en"])[verdict]
    return f"{word}{'：' if language in ('zh', 'ja') else ': '}{answer}"
