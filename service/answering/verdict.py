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

from service.answering.judge import first_token_alternatives
from service.answering.measures import numbers_supported
from service.answering.prompts import render_verdict_prompt
from service.llm import ChatModel
from service.schemas import Verdict

__all__ = [
    "VERDICT_WORDS",
    "Judged",
    "asks_yes_or_no",
    "judge_verdict",
    "read_verdict",
    "states_other_figures",
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
class Judged:
    """A yes/no question judged on sentences: whether they settle it, and which way."""

    support: float  # P(yes) + P(no): the sentences settle the question either way
    verdict: Verdict


def states_other_figures(question: str, sentences: Sequence[str]) -> bool:
    """Whether a yes/no question states a figure its sentences do not ("2030" for "2050").

    The small judge says yes to most such false premises; a figure the sentences do not
    state is no premise they bear out, so the verdict is no.
    """
    return not any(numbers_supported(question, sentence) for sentence in sentences)


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
    messages = render_verdict_prompt(list(sentences), question)
    top = await first_token_alternatives(llm, messages, deadline, timings, name)
    judged = None if top is None else read_verdict(top)
    if judged is not None and states_other_figures(question, sentences):
        return Judged(judged.support, "no")
    return judged


def with_verdict(answer: str, verdict: Verdict, language: str) -> str:
    """The answer text opened by its verdict in the asker's language: "No: five brands [1]."."""
    word = VERDICT_WORDS.get(language, VERDICT_WORDS["en"])[verdict]
    return f"{word}{'：' if language in ('zh', 'ja') else ': '}{answer}"
