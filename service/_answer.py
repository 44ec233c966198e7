"""Retrieve, ask the LLM, align its claims to source sentences, verify, or abstain."""

from __future__ import annotations

import logging
import math
import re
import time
from collections import Counter
from collections.abc import AsyncGenerator, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field

import anyio.to_thread

from index import CorpusIndex, Embedder, Sentence, Vectors, split_spans
from service._errors import LLMError
from service._llm import ChatModel
from service._prompts import render_answer_prompt
from service._schemas import AnswerMode, AskResponse, Citation, Passage, SentenceHit
from service._settings import Settings
from service._verify import Terms, coverage, entities_supported, numbers_supported, terms

__all__ = [
    "AnswerDelta",
    "AnswerDone",
    "Answerer",
    "AskEvent",
    "Candidate",
    "CitationFound",
    "StreamFailed",
]

log = logging.getLogger(__name__)

_REFUSAL = re.compile(
    r"\bnot\s+found\b|\b(?:does|do|did)\s+not\s+(?:say|mention|state|specify|provide|contain)"
    r"|\bnot\s+(?:mentioned|stated|specified|provided|available)\b|\bno\s+information\b"
    r"|\bcannot\s+(?:be\s+)?(?:determined|answered|found)\b",
    re.IGNORECASE,
)
_LABELS = re.compile(r"\s*[\[(]\s*S?\s*\d+(?:\s*[,;]\s*S?\s*\d+)*\s*[\])]")
_LABEL_NUMBER = re.compile(r"\d+")
_POOL = 30


@dataclass(frozen=True)
class Candidate:
    """A retrieved sentence with its evidence for the question."""

    index: int  # position in CorpusIndex.sentences
    dense: float
    lexical: float
    fused: float = 0.0  # reciprocal-rank fusion of the dense and BM25 rankings

    @property
    def evidence(self) -> float:
        """How strongly this sentence bears on the question, 0..1."""
        return 0.5 * max(self.dense, 0.0) + 0.5 * self.lexical


@dataclass(frozen=True)
class AnswerDelta:
    """More answer text."""

    text: str


@dataclass(frozen=True)
class CitationFound:
    """A verified citation; ``number`` is its ``[n]`` in the answer and never changes."""

    number: int
    citation: Citation


@dataclass(frozen=True)
class StreamFailed:
    """The LLM failed after text was shown; the answer that follows is degraded."""

    message: str


@dataclass(frozen=True)
class AnswerDone:
    """The complete answer, as the non-streaming call returns it."""

    response: AskResponse


AskEvent = AnswerDelta | CitationFound | StreamFailed | AnswerDone


@dataclass(frozen=True)
class _Claim:
    text: str
    hints: frozenset[int]  # sentence indices the model labelled


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


def _claims(reply: str, labelled: list[int]) -> Iterator[_Claim]:
    """Split the model's reply into claims, each with the sentences it labelled."""
    pieces = _LABELS.split(reply)
    labels = _LABELS.findall(reply)
    for i, piece in enumerate(pieces):
        hint_numbers = [int(n) for n in _LABEL_NUMBER.findall(labels[i])] if i < len(labels) else []
        hints = frozenset(labelled[n - 1] for n in hint_numbers if 1 <= n <= len(labelled))
        spans = split_spans(piece)
        for j, (start, end) in enumerate(spans):
            text = piece[start:end].strip(" \t\n-*•")
            if text and any(ch.isalnum() for ch in text):
                yield _Claim(text, hints if j == len(spans) - 1 else frozenset())


@dataclass
class Answerer:
    """The question-answering pipeline over one corpus index."""

    index: CorpusIndex
    embedder: Embedder
    llm: ChatModel | None
    settings: Settings
    _idf: dict[str, float] = field(init=False, repr=False)
    _titles: dict[str, Terms] = field(init=False, repr=False)
    _corpus_chars: int = field(init=False, repr=False)
    _last_question: tuple[str, Vectors] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Rare words say more about whether a sentence answers a question than common ones.
        frequency = Counter(t for s in self.index.sentences for t in terms(s.text))
        n = len(self.index.sentences)
        self._idf = {t: math.log(1 + n / (1 + f)) for t, f in frequency.items()}
        self._titles = {d.doc_id: terms(d.title) for d in self.index.documents.values()}
        self._corpus_chars = sum(len(d.text) for d in self.index.documents.values())

    def _question_vector(self, question: str) -> Vectors:
        """The question's embedding; retrieval and verification share one encode."""
        last = self._last_question
        if last is not None and last[0] == question:
            return last[1]
        vector: Vectors = self.embedder.encode([question])[0]
        self._last_question = (question, vector)
        return vector

    def _own_terms(self, sentence_index: int) -> Terms:
        """A sentence's terms with its document's title."""
        sentence = self.index.sentences[sentence_index]
        return terms(sentence.text) | self._titles.get(sentence.doc_id, frozenset())

    def _context_terms(self, sentence_index: int) -> Terms:
        """:meth:`_own_terms` plus the sentence before, which often names what "it" is."""
        own = self._own_terms(sentence_index)
        sentences = self.index.sentences
        before = sentence_index - 1
        if before >= 0 and sentences[before].doc_id == sentences[sentence_index].doc_id:
            return own | terms(sentences[before].text)
        return own

    def _lexical(self, q_terms: Terms, sentence_index: int) -> float:
        """IDF-weighted share of the question's terms that a sentence holds.

        Four fifths count the sentence with its title, one fifth its wider context.
        """
        own = coverage(q_terms, self._own_terms(sentence_index), self._idf)
        context = coverage(q_terms, self._context_terms(sentence_index), self._idf)
        return 0.8 * own + 0.2 * context

    def candidates(self, question: str, pool: int = _POOL) -> list[Candidate]:
        """Sentences ranked for the question, best first.

        Dense (FAISS) and, in hybrid mode, BM25 rankings are fused by reciprocal rank;
        each candidate also carries its evidence for the question (see ``Candidate``).
        """
        index = self.index
        settings = self.settings
        q_vec = self._question_vector(question)
        _, dense_ids = index.store.search(q_vec[None, :], pool)
        rankings = [([int(i) for i in dense_ids[0] if i >= 0], settings.dense_weight)]
        if settings.retrieval == "hybrid":
            _, lexical_ids = index.lexical.search(question, pool)
            rankings.append(([int(i) for i in lexical_ids], settings.lexical_weight))
        fused: dict[int, float] = {}
        for ranking, weight in rankings:
            for rank, i in enumerate(ranking):
                fused[i] = fused.get(i, 0.0) + weight / (settings.rrf_k + rank + 1)
        ids = list(fused)
        if not ids:
            return []
        dense = index.vectors[ids] @ q_vec
        q_terms = terms(question)
        found = [
            Candidate(i, float(d), self._lexical(q_terms, i), fused[i])
            for i, d in zip(ids, dense, strict=True)
        ]
        # Fusion picks the pool; evidence orders it (measured better on SQuAD at every k).
        found.sort(key=lambda c: c.evidence, reverse=True)
        return found

    def sentence_hits(self, candidates: list[Candidate], top_k: int) -> list[SentenceHit]:
        """The best ``top_k`` candidates as wire objects."""
        hits = []
        for c in candidates[:top_k]:
            s = self.index.sentences[c.index]
            hits.append(
                SentenceHit(s.doc_id, s.sentence_id, s.start, s.end, s.text, round(c.evidence, 4))
            )
        return hits

    def passages(self, candidates: list[Candidate], top_k: int) -> list[Passage]:
        """Chunks around the best candidates, each once, best first."""
        seen: set[str] = set()
        passages = []
        for c in candidates:
            chunk = self.index.chunk_of(c.index)
            if chunk.chunk_id in seen:
                continue
            seen.add(chunk.chunk_id)
            text = self.index.documents[chunk.doc_id].text[chunk.start : chunk.end]
            passages.append(
                Passage(
                    chunk.doc_id, chunk.chunk_id, chunk.start, chunk.end, text, round(c.evidence, 4)
                )
            )
            if len(passages) == top_k:
                break
        return passages

    # -- answering -------------------------------------------------------------

    def _context(self, candidates: list[Candidate]) -> list[int]:
        """Sentence indices shown to the LLM, in document order.

        A small corpus goes in whole, so the prompt prefix is the same for every
        question and the LLM server reuses its cache; a large one is cut to the
        best candidates.
        """
        if self._corpus_chars <= self.settings.whole_corpus_chars:
            return list(range(len(self.index.sentences)))
        chosen = [c.index for c in candidates[: self.settings.context_sentences]]
        return sorted(chosen)

    def _citation(self, sentence: Sentence, score: float) -> Citation:
        return Citation(
            sentence.doc_id, sentence.sentence_id, sentence.start, sentence.end, sentence.text,
            round(score, 4),
        )  # fmt: skip

    def _abstain(
        self,
        mode: AnswerMode,
        passages: list[Passage],
        timings: dict[str, float],
        *,
        degraded: bool,
    ) -> AskResponse:
        return AskResponse(None, False, [], passages, mode, degraded, timings)

    def extractive(
        self,
        question: str,
        candidates: list[Candidate],
        passages: list[Passage],
        timings: dict[str, float],
        *,
        degraded: bool = False,
    ) -> AskResponse:
        """Answer with the single best supporting sentence, or abstain."""
        if not candidates or not self._answers_question(question, [candidates[0].index]):
            return self._abstain("extractive", passages, timings, degraded=degraded)
        best = candidates[0]
        sentence = self.index.sentences[best.index]
        answer = " ".join(sentence.text.split()) + " [1]"
        citation = self._citation(sentence, best.evidence)
        return AskResponse(answer, True, [citation], passages, "extractive", degraded, timings)

    def _verify(
        self, question: str, claims: list[_Claim], context: list[int]
    ) -> list[tuple[str, int, float]]:
        """Keep the claims a context sentence supports, each with its best sentence."""
        if not claims:
            return []
        claim_vecs = self.embedder.encode([c.text for c in claims])
        sent_vecs = self.index.vectors[context]
        dense = claim_vecs @ sent_vecs.T
        kept = []
        q_terms = terms(question)
        for ci, claim in enumerate(claims):
            claim_terms = terms(claim.text)
            novel = claim_terms - q_terms
            scored = []
            for si, sentence_index in enumerate(context):
                source = self.index.sentences[sentence_index].text
                if not numbers_supported(claim.text, source):
                    continue
                if not entities_supported(claim.text, source, question):
                    continue
                source_terms = terms(source)
                # What the claim adds beyond the question must be in the source too.
                support = (
                    0.5 * coverage(claim_terms, source_terms)
                    + 0.2 * (coverage(novel, source_terms) if novel else 1.0)
                    + 0.3 * max(float(dense[ci, si]), 0.0)
                )
                hint = 0.05 if sentence_index in claim.hints else 0.0
                scored.append((support + hint, support, sentence_index))
            if not scored:
                continue
            _, support, sentence_index = max(scored)
            if support >= self.settings.min_claim_support:
                kept.append((claim.text, sentence_index, support))
        return kept

    def _answers_question(self, question: str, cited: list[int]) -> bool:
        """Whether the cited sentences, together, bear on the question strongly enough.

        Both tests must pass: the best sentence's evidence, and the share of the
        question's terms that the cited sentences hold. Supported claims that miss the
        question's point ("built where?" answered with "built on platform X") fail here.
        """
        q_terms = terms(question)
        q_vec = self._question_vector(question)
        vectors = self.index.vectors[cited]
        evidence = max(
            Candidate(i, float(v @ q_vec), self._lexical(q_terms, i)).evidence
            for i, v in zip(cited, vectors, strict=True)
        )
        held = frozenset().union(*(self._context_terms(i) for i in cited))
        q_coverage = coverage(q_terms, held, self._idf)
        log.debug("question evidence %.3f, coverage %.3f", evidence, q_coverage)
        return (
            evidence >= self.settings.min_evidence
            and q_coverage >= self.settings.min_question_coverage
        )

    async def warm(self) -> None:
        """Send one question so the LLM server caches the shared prompt prefix."""
        if self.llm is None:
            return
        candidates = self.candidates("warm-up")
        messages = render_answer_prompt(
            [self.index.sentences[i].text for i in self._context(candidates)], "warm-up"
        )
        try:
            await self.llm.complete(messages, max_tokens=1)
        except LLMError as exc:
            log.warning("LLM warm-up failed: %s", exc)

    async def ask(self, question: str, top_k: int = 5, mode: AnswerMode = "llm") -> AskResponse:
        """Answer ``question`` with verified citations, or abstain."""
        async for event in self.ask_events(question, top_k, mode):
            if isinstance(event, AnswerDone):
                return event.response
        raise AssertionError("ask_events ended without AnswerDone")  # pragma: no cover

    async def ask_events(
        self, question: str, top_k: int = 5, mode: AnswerMode = "llm"
    ) -> AsyncGenerator[AskEvent, None]:
        """Answer as a stream: text deltas, verified citations as they settle, then the answer.

        A citation is yielded only once the claim it supports is complete and verified
        and the citations so far bear on the question; later text can only add to them.
        The final ``AnswerDone`` is what :meth:`ask` returns for the same request.
        """
        started = time.perf_counter()
        # Encoding and verification are CPU work: they run in worker threads so the
        # event loop keeps serving other requests meanwhile.
        candidates = await anyio.to_thread.run_sync(self.candidates, question)
        passages = self.passages(candidates, top_k)
        timings = {"retrieve": _ms(started)}
        if mode == "extractive" or self.llm is None:
            response = self.extractive(
                question, candidates, passages, timings, degraded=mode == "llm"
            )
            timings["total"] = _ms(started)
            for event in _replay(response):
                yield event
            return
        if not candidates or candidates[0].evidence < self.settings.min_evidence:
            timings["total"] = _ms(started)  # too weak to be worth asking the LLM
            yield AnswerDone(self._abstain("llm", passages, timings, degraded=False))
            return
        context = self._context(candidates)
        messages = render_answer_prompt([self.index.sentences[i].text for i in context], question)
        reply = _ReplyStream(self, question, context)
        llm_started = time.perf_counter()
        try:
            stream = self.llm.stream(messages, max_tokens=self.settings.llm_max_tokens)
            async with aclosing(stream) as tokens:
                async for token in tokens:
                    if "first_token" not in timings:
                        timings["first_token"] = _ms(llm_started)
                    for event in await anyio.to_thread.run_sync(reply.feed, token):
                        yield event
        except LLMError as exc:
            log.warning("LLM failed: %s", exc)
            timings["llm"] = _ms(llm_started)
            if reply.emitted:
                yield StreamFailed(str(exc))
            if reply.sent_citations:
                # Citations already sent stand; the answer is what was verified so far.
                response = self._compose(reply.kept, passages, timings, degraded=True)
            else:
                response = self.extractive(question, candidates, passages, timings, degraded=True)
            timings["total"] = _ms(started)
            for event in _replay(response, text=not reply.emitted, after=reply.sent_citations):
                yield event
            return
        timings["llm"] = _ms(llm_started)
        for event in reply.finish():
            yield event
        verify_started = time.perf_counter()
        response = await anyio.to_thread.run_sync(
            self._from_reply, question, reply, candidates, passages, timings
        )
        timings["verify"] = _ms(verify_started)
        timings["total"] = _ms(started)
        sent = response.citations[: reply.sent_citations]
        if [c.sentence_id for c in sent] != reply.sent_ids:  # pragma: no cover - by construction
            log.error("streamed citations disagree with the answer")
        if reply.emitted and response.mode == "extractive" and response.answer:
            # The model's streamed text was not verifiable; show the sentence that answers.
            yield AnswerDelta("\n\n" + response.answer)
        for event in _replay(response, text=not reply.emitted, after=reply.sent_citations):
            yield event

    def _without_llm_answer(
        self,
        question: str,
        candidates: list[Candidate],
        passages: list[Passage],
        timings: dict[str, float],
    ) -> AskResponse:
        """Abstain after a refusal or an unverifiable reply, unless a sentence plainly answers.

        The small model refuses some answerable questions and misreads others; when a
        sentence holds nearly all of the question's terms, that sentence is the answer.
        """
        best = candidates[0] if candidates else None
        if best is None or best.lexical < self.settings.refusal_override_coverage:
            return self._abstain("llm", passages, timings, degraded=False)
        return self.extractive(question, candidates, passages, timings)

    def _from_reply(
        self,
        question: str,
        reply: _ReplyStream,
        candidates: list[Candidate],
        passages: list[Passage],
        timings: dict[str, float],
    ) -> AskResponse:
        log.debug("LLM reply: %r", reply.raw)
        # Claims settled while streaming keep their verdicts; only the tail is verified here.
        tail = _claims_of(reply.raw, reply.context)[reply.claims_seen :]
        kept = reply.kept + self._verify(question, tail, reply.context)
        if not kept:
            return self._without_llm_answer(question, candidates, passages, timings)
        if not self._answers_question(question, sorted({i for _, i, _ in kept})):
            return self._abstain("llm", passages, timings, degraded=False)
        return self._compose(kept, passages, timings, degraded=False)

    def _compose(
        self,
        kept: list[tuple[str, int, float]],
        passages: list[Passage],
        timings: dict[str, float],
        *,
        degraded: bool,
    ) -> AskResponse:
        """The answer text with ``[n]`` markers, and the citations they point at."""
        if not kept:
            return self._abstain("llm", passages, timings, degraded=degraded)
        citations: list[Citation] = []
        number_of: dict[int, int] = {}
        parts = []
        for text, sentence_index, support in kept:
            if sentence_index not in number_of:
                citations.append(self._citation(self.index.sentences[sentence_index], support))
                number_of[sentence_index] = len(citations)
            body = text.rstrip(".!?;:, ")
            ending = text[len(body) :].strip()[:1] or "."
            parts.append(f"{body} [{number_of[sentence_index]}]{ending}")
        return AskResponse(" ".join(parts), True, citations, passages, "llm", degraded, timings)


def _claims_of(reply: str, context: list[int]) -> list[_Claim]:
    """The reply's claims, less those that only say the sources do not answer."""
    return [c for c in _claims(reply, context) if not _REFUSAL.search(c.text)]


def _replay(response: AskResponse, *, text: bool = True, after: int = 0) -> Iterator[AskEvent]:
    """Events for a finished answer: its text (unless already streamed), unsent citations, done."""
    if text and response.answer:
        yield AnswerDelta(response.answer)
    for number, citation in enumerate(response.citations[after:], after + 1):
        yield CitationFound(number, citation)
    yield AnswerDone(response)


class _ReplyStream:
    """Turns the LLM's tokens into display text and verified citations as they arrive.

    Labels like ``[S3]`` never reach the display; at each label the claims before it
    are complete, so they are verified there and, once the cited sentences bear on
    the question, their citations are released. A reply that starts like a refusal
    is held back until it is clear.
    """

    _HOLD_START = 12  # characters held back at the start, to catch "NOT FOUND"

    def __init__(self, answerer: Answerer, question: str, context: list[int]) -> None:
        self.answerer = answerer
        self.question = question
        self.context = context
        self.raw = ""
        self.cursor = 0
        self.refused = False
        self.emitted = False
        self.claims_seen = 0
        self.kept: list[tuple[str, int, float]] = []
        self.numbers: dict[int, int] = {}
        self.sent_ids: list[str] = []

    @property
    def sent_citations(self) -> int:
        """How many citations have been released."""
        return len(self.sent_ids)

    def feed(self, token: str) -> list[AskEvent]:
        """Take one token; return what can be shown now."""
        self.raw += token
        return self._advance(final=False)

    def finish(self) -> list[AskEvent]:
        """The reply is complete; return what was held back."""
        return self._advance(final=True)

    def _safe_end(self) -> int:
        end = len(self.raw.rstrip())  # trailing space may precede a label
        opening = max(self.raw.rfind("[", self.cursor), self.raw.rfind("(", self.cursor))
        if opening >= 0 and not any(ch in self.raw[opening:] for ch in "])"):
            end = min(end, opening)
        return max(end, self.cursor)

    def _delta(self, text: str) -> list[AskEvent]:
        if not self.emitted:
            text = text.lstrip()
        if not text:
            return []
        self.emitted = True
        return [AnswerDelta(text)]

    def _advance(self, *, final: bool) -> list[AskEvent]:
        if self.refused:
            return []
        if _REFUSAL.search(self.raw):
            self.refused = True
            return []
        if not final and not self.emitted and len(self.raw.strip()) < self._HOLD_START:
            return []
        end = len(self.raw) if final else self._safe_end()
        events: list[AskEvent] = []
        position = self.cursor
        for label in _LABELS.finditer(self.raw, self.cursor, end):
            events += self._delta(self.raw[position : label.start()])
            events += self._settle(label.end())
            position = label.end()
        events += self._delta(self.raw[position:end])
        self.cursor = end
        return events

    def _settle(self, upto: int) -> list[AskEvent]:
        """Verify the claims completed by the label ending at ``upto``."""
        claims = _claims_of(self.raw[:upto], self.context)
        fresh = claims[self.claims_seen :]
        self.claims_seen = len(claims)
        kept = self.answerer._verify(self.question, fresh, self.context)
        if not kept:
            return []
        self.kept += kept
        for _, sentence_index, _ in self.kept:
            self.numbers.setdefault(sentence_index, len(self.numbers) + 1)
        cited = sorted(self.numbers)
        if not self.answerer._answers_question(self.question, cited):
            return []
        markers = sorted({self.numbers[i] for _, i, _ in kept})
        events = self._delta(" " + "".join(f"[{n}]" for n in markers))
        for sentence_index, number in sorted(self.numbers.items(), key=lambda item: item[1]):
            if number > self.sent_citations:
                sentence = self.answerer.index.sentences[sentence_index]
                support = next(s for _, i, s in self.kept if i == sentence_index)
                events.append(CitationFound(number, self.answerer._citation(sentence, support)))
                self.sent_ids.append(sentence.sentence_id)
        return events
