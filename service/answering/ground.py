"""Grounding: which sentence supports each claim, and whether the cited sentences answer.

Every reason to abstain is named here (``Abstention``) and decided by this module's
judgements; the answerer only reports them. Source sentences are data: a sentence that
gives orders to the model or the reader (``_instructions``) is never shown to the LLM as
a source nor accepted as evidence.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from enum import StrEnum

from service.answering.compose import VerifiedClaim
from service.answering.instructions import document_instructions, document_suspects, examples_for
from service.answering.measures import (
    adds_to,
    asks_several,
    coverage,
    entities_supported,
    name_lists,
    numbers_in,
    numbers_supported,
    terms,
)
from service.answering.quote import align
from service.answering.reply import Claim
from service.answering.retrieve import Retrieval, Retriever
from service.settings import Settings

__all__ = [
    "Abstention",
    "Grounder",
    "answerability",
    "answers_as_asked",
    "cuts_a_list",
    "holds_what_is_asked",
    "p_yes",
]

log = logging.getLogger(__name__)


class Abstention(StrEnum):
    """Why an answer was withheld (``AskResponse.abstained_because``)."""

    WEAK_EVIDENCE = "weak_evidence"  # no sentence bears on the question enough to ask the LLM
    REFUSED = "llm_refused"  # the LLM said the sources do not answer
    UNSUPPORTED = "unsupported"  # no claim of the reply is supported by a source sentence
    OFF_POINT = "off_point"  # supported claims, but their sentences miss the question
    MISSING_ASKED = "missing_asked_for"  # the answer lacks the figure/time/place asked for
    UNSURE = "llm_unsure"  # the LLM's own probability of refusing was too high
    JUDGED = "judged_unanswered"  # the LLM, asked yes/no, doubted the sources answer
    LLM_FAILED = "llm_failed"  # the LLM failed and no sentence answers on its own
    INSTRUCTION = "instruction"  # the question tries to change how the service behaves
    OUT_OF_SCOPE = "no_documents_in_scope"  # the request's filter matches no document


_ASKS_NUMBER = re.compile(
    r"\bhow\s+(?:many|much|long|old|far|big|large|tall|often|high)\b"
    r"|\bwhat\s+(?:percentage|percent|number|proportion|share|amount|fraction)\b",
    re.IGNORECASE,
)
_ASKS_TIME = re.compile(
    r"^\s*(?:when|until when|since when)\b"
    r"|\b(?:what|which|in which|in what)\s+(?:year|decade|century|month|date|day|era)\b",
    re.IGNORECASE,
)
_TIME_WORD = re.compile(
    r"\b(?:january|february|march|april|may|june|july|august|september|october|november"
    r"|december|spring|summer|autumn|fall|winter|century|decade|today|yesterday|ago"
    r"|mondays?|tuesdays?|wednesdays?|thursdays?|fridays?|saturdays?|sundays?|weekends?)\b",
    re.IGNORECASE,
)


def answerability(top: Sequence[tuple[str, float]]) -> float | None:
    """The LLM's own probability that the sources answer: 1 - P(its reply starts "NOT FOUND").

    ``top`` is the first reply token's likeliest alternatives with their logprobs; None
    when the server sent none.
    """
    if not top:
        return None
    refusing = sum(
        math.exp(logprob)
        for token, logprob in top
        if token.strip() and "not found".startswith(token.strip().lower())
    )
    return round(max(0.0, 1.0 - refusing), 4)


def p_yes(top: Sequence[tuple[str, float]]) -> float | None:
    """P(yes) of a yes/no reply, from its first token's alternatives; None without them."""
    yes = sum(math.exp(lp) for t, lp in top if t.strip().lower().startswith("yes"))
    no = sum(math.exp(lp) for t, lp in top if t.strip().lower().startswith("no"))
    return round(yes / (yes + no), 4) if yes + no > 0 else None


def cuts_a_list(question: str, answer: str, sources: Sequence[str]) -> bool:
    """Whether a question asking for several things got only some items of a cited list.

    "Which brands …?" answered with two of the five names its sentence lists is cut short.
    """
    if not asks_several(question):
        return False
    lowered = answer.lower()
    for source in sources:
        for items in name_lists(source):
            named = [item.lower() in lowered for item in items]
            if any(named) and not all(named):
                return True
    return False


def holds_what_is_asked(question: str, answer: str) -> bool:
    """Whether an answer holds the kind of thing the question asks for.

    "How many …" needs a figure (digits or number words), "when …" digits or a time
    word; other questions pass, since their answers take too many shapes to check by form.
    """
    if _ASKS_NUMBER.search(question):
        return bool(numbers_in(answer))
    if _ASKS_TIME.search(question):
        return any(ch.isdigit() for ch in answer) or bool(_TIME_WORD.search(answer))
    return True


def answers_as_asked(question: str, answer: str, sources: Sequence[str]) -> bool:
    """Whether an answer holds what is asked for, and every item of a list it cites from."""
    return holds_what_is_asked(question, answer) and not cuts_a_list(question, answer, sources)


class Grounder:
    """Judges claims and answers against the sentences of one index."""

    def __init__(self, retriever: Retriever, settings: Settings) -> None:
        self.retriever = retriever
        self.min_claim_support = settings.min_claim_support
        self.min_evidence = settings.min_evidence
        self.min_coverage = settings.min_question_coverage
        self.support_judge = settings.support_judge
        self.support_judge_min = settings.support_judge_min
        self.second_opinion_min = settings.second_opinion_min
        self.instruction_nearness = settings.instruction_nearness
        self.untrusted: frozenset[int] = frozenset()
        self.refresh()

    def refresh(self) -> None:
        """Recompute which sentences give orders, from the documents' verdicts or suspects.

        Instructions planted in documents are never evidence. A document the LLM has not
        screened yet (``judge.screen_documents``) has its suspects counted as instructions.
        """
        index = self.retriever.index
        untrusted: set[int] = set()
        for doc_id in index.documents:
            found = document_instructions(index, doc_id)
            if found is None:
                found = self.suspects(doc_id)
            positions = index.positions_of(doc_id)
            untrusted.update(positions[k] for k in found)
        self.untrusted = frozenset(untrusted)

    def suspects(self, doc_id: str) -> list[int]:
        """Offsets of a document's sentences that the LLM should screen for instructions."""
        examples = examples_for(self.retriever.embedder)
        index = self.retriever.index
        return document_suspects(index, doc_id, examples, self.instruction_nearness)

    def verify(
        self,
        question: str,
        claims: Sequence[Claim],
        context: list[int],
        *,
        statements: bool = False,
    ) -> list[VerifiedClaim]:
        """The claims a context sentence supports, each as a quote of its best sentence.

        A claim's figures and names must be in the sentence; then its support mixes the
        share of its terms the sentence holds, the share of what it adds beyond the
        question, and embedding cosine. The model's own label is only a small hint. A
        supported claim is kept as the span of the sentence it quotes (``quote.align``),
        so what is shown is the source's words; a quote that adds nothing to the question
        is no answer. ``statements`` are claims that restate a yes/no question: they are
        quoted as evidence (``quote.align``), with no words of theirs taken as the question's.
        """
        context = [i for i in context if i not in self.untrusted]
        if not claims or not context:
            return []
        index = self.retriever.index
        claim_vecs = self.retriever.embedder.encode([c.text for c in claims])
        dense = claim_vecs @ index.vectors[context].T
        kept = []
        q_terms = terms(question)
        for ci, claim in enumerate(claims):
            claim_terms = terms(claim.text)
            novel = claim_terms - q_terms
            if not adds_to(question, claim.text):
                continue  # it only restates the question: no answer in it
            scored = []
            for si, sentence_index in enumerate(context):
                source = index.sentences[sentence_index].text
                if not numbers_supported(claim.text, source):
                    continue
                if not entities_supported(claim.text, source, question):
                    continue
                quote = align(claim.text, source, question, statement=statements)
                if quote is None or not (terms(quote.text) - q_terms or numbers_in(quote.text)):
                    continue  # no span of it, or one that adds nothing to the question
                source_terms = terms(source)
                closeness = 0.3 * max(float(dense[ci, si]), 0.0)
                if quote.copied:
                    # A copy is supported by construction; a short one ("1901") shares
                    # too few terms with its sentence for the measure below.
                    support = 0.7 + closeness
                else:
                    support = (
                        0.5 * coverage(claim_terms, source_terms)
                        + 0.2 * (coverage(novel, source_terms) if novel else 1.0)
                        + closeness
                    )
                # A short copy ("Geely Holding Group") is often in several sentences: the
                # one that holds most of the question is its source, and the label only
                # a hint (it is wrong about one time in five).
                hint = 0.05 if sentence_index in claim.hints else 0.0
                asked = 0.3 * coverage(q_terms, source_terms) if quote.copied else 0.0
                scored.append((support + hint + asked, support, sentence_index, quote.text))
            # The claim is shown as the words of its best sentence that it quotes: the
            # model's own wording never is (it turns relations around, adds names).
            for _, support, sentence_index, text in sorted(scored, reverse=True):
                if support >= self.min_claim_support:
                    kept.append(VerifiedClaim(text, sentence_index, support))
                    break
        return kept

    def answers_question(self, retrieval: Retrieval, cited: list[int]) -> bool:
        """Whether the cited sentences, together, bear on the question strongly enough.

        Both tests must pass: the best sentence's evidence, and the share of the
        question's terms that the cited sentences hold. Supported claims that miss the
        question's point ("built where?" answered with "built on platform X") fail here.
        Adding sentences never makes either test fail.
        """
        if not cited:
            return False
        evidence = max(self.retriever.candidate(retrieval, i).evidence for i in cited)
        held = frozenset().union(*(self.retriever.context_terms(i) for i in cited))
        q_coverage = coverage(retrieval.terms, held, self.retriever.idf)
        log.debug("question evidence %.3f, coverage %.3f", evidence, q_coverage)
        return evidence >= self.min_evidence and q_coverage >= self.min_coverage

    def shortfall(
        self, retrieval: Retrieval, statement: str, cited: list[int]
    ) -> Abstention | None:
        """Why ``statement``, citing ``cited``, may not be given as the answer; None if it may.

        It must hold what the question asks for, not cut a cited list short, and its
        sentences must bear on the question. All but the list test only grow easier as
        a statement grows.
        """
        sources = [self.retriever.index.sentences[i].text for i in cited]
        if not answers_as_asked(retrieval.question, statement, sources):
            return Abstention.MISSING_ASKED
        if not self.answers_question(retrieval, cited):
            return Abstention.OFF_POINT
        return None

    def before_asking(self, retrieval: Retrieval) -> Abstention | None:
        """Why the question is not put to the LLM at all; None if it is.

        Nothing retrieved; or, with the judge off, no sentence bears on the question enough
        (``min_evidence``). With the judge on, it decides whether the sources answer:
        retrieval's evidence would refuse questions worded unlike their sentence ("from
        which city?" asked of a dateline) before the LLM has read them.
        """
        candidates = retrieval.candidates
        if not candidates or (
            not self.support_judge and candidates[0].evidence < self.min_evidence
        ):
            return Abstention.WEAK_EVIDENCE
        return None

    def judged(self, because: Abstention | None, support: float | None) -> Abstention | None:
        """Why a reply may not be given once the judge has spoken; None if it may.

        ``because`` is what the checks found (``shortfall`` and the like), ``support`` the
        judge's P(yes) that the reply's sentences state the answer. A reply that passed the
        checks is withheld when the judge doubts it (``support_judge_min``); one they held
        back is given after all when the judge vouches for it (``second_opinion_min``).
        Without a judgement, the checks alone decide.
        """
        if support is None:
            return because
        if because is None:
            return Abstention.JUDGED if support < self.support_judge_min else None
        return None if support >= self.second_opinion_min else because
