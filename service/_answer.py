"""Retrieve, ask the LLM, align its claims to source sentences, verify, or abstain."""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import AsyncGenerator, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field

import anyio.to_thread

from index import CorpusIndex, Embedder, Vectors
from service._compose import ABSTAIN_TEXT, Composition, VerifiedClaim
from service._errors import LLMError
from service._llm import ChatModel
from service._prompts import render_answer_prompt
from service._reply import Claim, ReplyParser
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


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


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

    def _abstain(
        self,
        mode: AnswerMode,
        passages: list[Passage],
        timings: dict[str, float],
        *,
        degraded: bool = False,
    ) -> AskResponse:
        return AskResponse(ABSTAIN_TEXT, False, [], passages, mode, degraded, timings)

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
        composition = Composition(self.index.sentences)
        sentence = self.index.sentences[best.index]
        composition.add([VerifiedClaim(sentence.text, best.index, best.evidence)])
        return _composed(composition, passages, "extractive", timings, degraded=degraded)

    def _verify(
        self, question: str, claims: Sequence[Claim], context: list[int]
    ) -> list[VerifiedClaim]:
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
                kept.append(VerifiedClaim(claim.text, sentence_index, support))
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
        """Answer as a stream of verified text and citations, then the whole answer.

        Nothing unverified is ever yielded: each claim of the LLM's reply is held back
        until it is complete and verified and the claims so far bear on the question;
        then its text and its new citations go out together. The ``AnswerDelta`` texts,
        joined, equal the final answer, and ``AnswerDone`` is what :meth:`ask` returns.
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
        elif not candidates or candidates[0].evidence < self.settings.min_evidence:
            response = self._abstain("llm", passages, timings)  # not worth asking the LLM
        else:
            async with aclosing(
                self._llm_events(self.llm, question, candidates, passages, timings, started)
            ) as events:
                async for event in events:
                    yield event
            return
        timings["total"] = _ms(started)
        for event in _replay(response):
            yield event

    async def _llm_events(
        self,
        llm: ChatModel,
        question: str,
        candidates: list[Candidate],
        passages: list[Passage],
        timings: dict[str, float],
        started: float,
    ) -> AsyncGenerator[AskEvent, None]:
        context = self._context(candidates)
        messages = render_answer_prompt([self.index.sentences[i].text for i in context], question)
        parser = ReplyParser(context)
        composition = Composition(self.index.sentences)
        llm_started = time.perf_counter()
        failure: LLMError | None = None
        try:
            async with aclosing(
                llm.stream(messages, max_tokens=self.settings.llm_max_tokens)
            ) as tokens:
                async for token in tokens:
                    timings.setdefault("first_token", _ms(llm_started))
                    claims = parser.feed(token)
                    if claims:
                        events = await anyio.to_thread.run_sync(
                            self._settle, question, claims, context, composition
                        )
                        if events:
                            timings.setdefault("first_text", _ms(started))
                        for event in events:
                            yield event
        except LLMError as exc:
            log.warning("LLM failed: %s", exc)
            failure = exc
        timings["llm"] = _ms(llm_started)
        if failure is None:
            verify_started = time.perf_counter()
            log.debug("LLM reply: %r", parser.raw)
            events = await anyio.to_thread.run_sync(
                self._settle, question, parser.finish(), context, composition
            )
            timings["verify"] = _ms(verify_started)
            for event in events:
                yield event
        elif composition.released_parts:
            yield StreamFailed("the LLM stopped part-way; the answer is what was verified so far")
        degraded = failure is not None
        if composition.released_parts:
            response = _composed(composition, passages, "llm", timings, degraded=degraded)
        elif failure is not None:
            response = self.extractive(question, candidates, passages, timings, degraded=True)
        elif composition.parts:
            response = self._abstain("llm", passages, timings)  # verified, but beside the point
        else:
            response = await anyio.to_thread.run_sync(
                self._without_llm_answer, question, candidates, passages, timings
            )
        timings["total"] = _ms(started)
        shown = composition.released_parts > 0
        for event in _replay(response, text=not shown, after=composition.released_citations):
            yield event

    def _settle(
        self,
        question: str,
        claims: Sequence[Claim],
        context: list[int],
        composition: Composition,
    ) -> list[AskEvent]:
        """Verify complete claims and release what may now be shown.

        Parts wait until the sentences cited so far bear on the question. That test only
        grows easier as citations are added, so once it passes, every later part is
        released as soon as it is verified, and the final answer keeps all of them.
        """
        composition.add(self._verify(question, claims, context))
        if not composition.pending:
            return []
        if not composition.released_parts and not self._answers_question(
            question, composition.cited
        ):
            return []
        text, citations = composition.release()
        return [AnswerDelta(text), *(CitationFound(n, c) for n, c in citations)]

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
            return self._abstain("llm", passages, timings)
        return self.extractive(question, candidates, passages, timings)


def _composed(
    composition: Composition,
    passages: list[Passage],
    mode: AnswerMode,
    timings: dict[str, float],
    *,
    degraded: bool,
) -> AskResponse:
    return AskResponse(
        composition.answer, True, composition.citations, passages, mode, degraded, timings
    )


def _replay(response: AskResponse, *, text: bool = True, after: int = 0) -> Iterator[AskEvent]:
    """Events for a finished answer: its text (unless already shown), unsent citations, done."""
    if text and response.answer:
        yield AnswerDelta(response.answer)
    for number, citation in enumerate(response.citations[after:], after + 1):
        yield CitationFound(number, citation)
    yield AnswerDone(response)
