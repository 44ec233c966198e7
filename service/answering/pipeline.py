"""The answering pipeline: retrieve, ask the LLM, ground its claims, compose, stream.

Each step lives in its own module: ``_retrieve`` (candidates and evidence), ``_reply``
(the LLM's reply cut into claims), ``_ground`` (claim support, whether the cited sentences
answer, and every reason to abstain), ``_compose`` (answer text, markers, citations).
This module runs them in order and turns the result into events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field

import anyio
import anyio.to_thread
import msgspec

from index import CorpusIndex, Embedder
from service.answering.compose import ABSTAIN_TEXT, Composition, VerifiedClaim
from service.errors import BusyError, LLMError
from service.answering.ground import Abstention, Grounder, answerability, p_yes
from service.answering.instructions import (
    INSTRUCTION_MIN,
    QUESTION_INSTRUCTION_MIN,
    document_instructions,
    judged_instructions,
    suspect_question,
)
from service.llm.client import ChatModel, QueuedChatModel, Token
from service.observe import INDEX_DOCUMENTS, INDEX_SEGMENTS, INDEX_SENTENCES, record_answer
from service.answering.prompts import render_answer_prompt, render_judge_prompt, render_screen_prompt
from service.answering.reply import Claim, ReplyParser, claims_of
from service.answering.retrieve import Candidate, Retrieval, Retriever
from service.schemas import AnswerMode, AskResponse, Citation, Passage
from service.settings import Settings

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

_EXTRACTIVE_TRIES = 3  # candidates tried, best first, for a sentence that answers on its own


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
    retriever: Retriever = field(init=False, repr=False)
    grounder: Grounder = field(init=False, repr=False)
    _corpus_chars: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.llm is not None and not isinstance(self.llm, QueuedChatModel):
            # One queue per model: an answerer rebuilt after a write keeps its predecessor's.
            self.llm = QueuedChatModel(
                self.llm,
                running=self.settings.llm_running,
                max_waiting=self.settings.llm_max_waiting,
            )
        self.retriever = Retriever(self.index, self.embedder, self.settings)
        self.grounder = Grounder(self.retriever, self.settings)
        self._corpus_chars = sum(len(d.text) for d in self.index.documents.values())
        INDEX_DOCUMENTS.set(len(self.index.documents))
        INDEX_SENTENCES.set(len(self.index.sentences))
        INDEX_SEGMENTS.set(len(self.index.segments))

    def check_capacity(self, mode: AnswerMode = "llm") -> None:
        """Refuse at once, with :class:`BusyError`, a question the LLM queue has no room for."""
        if mode == "llm" and isinstance(self.llm, QueuedChatModel) and self.llm.full:
            raise BusyError()

    def _context(self, candidates: list[Candidate]) -> list[int]:
        """Sentence indices shown to the LLM, in document order, less untrusted ones.

        A small corpus goes in whole, so the prompt prefix is the same for every
        question and the LLM server reuses its cache; a large one is cut to the
        best candidates.
        """
        untrusted = self.grounder.untrusted
        if self._corpus_chars <= self.settings.whole_corpus_chars:
            return [i for i in range(len(self.index.sentences)) if i not in untrusted]
        trusted = [c.index for c in candidates if c.index not in untrusted]
        return sorted(trusted[: self.settings.context_sentences])

    def _prompt(self, retrieval: Retrieval) -> tuple[list[int], list[dict[str, str]]]:
        """The context sentences shown to the LLM, and the chat messages that show them."""
        context = self._context(retrieval.candidates)
        sources = [self.index.sentences[i].text for i in context]
        return context, render_answer_prompt(sources, retrieval.question)

    def _abstain(
        self,
        mode: AnswerMode,
        passages: list[Passage],
        timings: dict[str, float],
        because: Abstention,
        *,
        degraded: bool = False,
    ) -> AskResponse:
        log.debug("abstained: %s", because)
        return AskResponse(
            ABSTAIN_TEXT, False, [], passages, mode, degraded, timings, abstained_because=because
        )

    def extractive(
        self,
        retrieval: Retrieval,
        passages: list[Passage],
        timings: dict[str, float],
        *,
        degraded: bool = False,
        because: Abstention = Abstention.WEAK_EVIDENCE,
        tries: list[Candidate] | None = None,
    ) -> AskResponse:
        """Answer with the first sentence of ``tries`` that answers on its own, or abstain.

        ``tries`` defaults to the best few retrieved candidates.
        """
        for c in retrieval.candidates[:_EXTRACTIVE_TRIES] if tries is None else tries:
            sentence = self.index.sentences[c.index]
            if c.index in self.grounder.untrusted:
                continue
            if self.grounder.shortfall(retrieval, sentence.text, [c.index]) is None:
                composition = Composition(self.index.sentences)
                composition.add([self._whole(c)])
                return _composed(composition, passages, "extractive", timings, degraded=degraded)
        return self._abstain("extractive", passages, timings, because, degraded=degraded)

    async def screen(self) -> None:
        """Have the LLM judge, once per document, which suspect sentences give orders.

        Documents judged before (the index keeps verdicts across writes) cost nothing. Each
        call waits until the LLM is idle, so that screening a large upload never holds up a
        question. When a judgement fails (or the server sends no logprobs), screening stops:
        the documents left unjudged keep their suspects out, and the next warm-up tries them
        again.
        """
        if self.llm is None:
            return
        index = self.index
        judged = orders_found = 0
        for doc_id in list(index.documents):
            if document_instructions(index, doc_id) is not None:
                continue
            sentences = index.sentences_of(doc_id)
            orders = []
            for k in self.grounder.suspects(doc_id):
                # Questions go first: a new document's suspects wait out of the prompt.
                while isinstance(self.llm, QueuedChatModel) and not self.llm.idle:
                    await anyio.sleep(0.1)
                messages = render_screen_prompt("sentence", sentences[k].text)
                deadline = time.monotonic() + self.settings.llm_deadline_s
                p = await self._yes(self.llm, messages, deadline, {}, "screen")
                if p is None:
                    log.warning("instruction screen stopped: no judgement for a suspect")
                    self.grounder.refresh()
                    return
                judged += 1
                if p >= INSTRUCTION_MIN:
                    orders.append(k)
            judged_instructions(index, doc_id, orders)
            orders_found += len(orders)
        if judged:
            self.grounder.refresh()
            log.info("screened %d suspect sentences: %d give orders", judged, orders_found)

    async def _instruction(self, llm: ChatModel, retrieval: Retrieval, deadline: float,
                           timings: dict[str, float]) -> bool:  # fmt: skip
        """Whether the question tries to change how the service behaves (the LLM judges)."""
        if not suspect_question(retrieval.question):
            return False
        messages = render_screen_prompt("question", retrieval.question)
        p = await self._yes(llm, messages, deadline, timings, "screen")
        log.debug("question screened: P(instruction) %s", p)
        return p is not None and p >= QUESTION_INSTRUCTION_MIN

    async def warm(self) -> None:
        """Screen the documents, then send one question so the LLM caches the prompt prefix."""
        if self.llm is None:
            return
        await self.screen()
        _, messages = self._prompt(self.retriever.retrieve("warm-up"))
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
        async with aclosing(self._events(question, top_k, mode)) as events:
            async for event in events:
                if isinstance(event, AnswerDone):
                    record_answer(event.response)
                yield event

    async def _events(
        self, question: str, top_k: int, mode: AnswerMode
    ) -> AsyncGenerator[AskEvent, None]:
        started = time.perf_counter()
        # Encoding and verification are CPU work: they run in worker threads so the
        # event loop keeps serving other requests meanwhile.
        retrieval = await anyio.to_thread.run_sync(self.retriever.retrieve, question)
        passages = self.retriever.passages(retrieval.candidates, top_k)
        timings = {"retrieve": _ms(started)}
        # One answer's LLM time, the support judge's included, ends here.
        deadline = time.monotonic() + self.settings.llm_deadline_s
        if mode == "extractive" or self.llm is None:
            response = self.extractive(retrieval, passages, timings, degraded=mode == "llm")
        elif await self._instruction(self.llm, retrieval, deadline, timings):
            response = self._abstain("llm", passages, timings, Abstention.INSTRUCTION)
        elif (unasked := self.grounder.before_asking(retrieval)) is not None:
            response = self._abstain("llm", passages, timings, unasked)
        else:
            async with aclosing(
                self._llm_events(self.llm, retrieval, passages, timings, started, deadline)
            ) as events:
                async for event in events:
                    yield event
            return
        timings["total"] = _ms(started)
        for event in _replay(response):
            yield event

    async def _p_yes(
        self,
        llm: ChatModel,
        sentences: list[int],
        question: str,
        deadline: float,
        timings: dict[str, float],
        name: str,
    ) -> float | None:
        """The LLM's P(yes) that ``sentences`` state the answer (``prompts/judge.md``)."""
        texts = [self.index.sentences[i].text for i in sentences]
        messages = render_judge_prompt(texts, question)
        return await self._yes(llm, messages, deadline, timings, name)

    async def _yes(
        self,
        llm: ChatModel,
        messages: list[dict[str, str]],
        deadline: float,
        timings: dict[str, float],
        name: str,
    ) -> float | None:
        """P(yes) of a yes/no prompt, from the first reply token's logprobs.

        None when the call fails or the server sends no logprobs; the time goes into
        ``timings[name]``.
        """
        started = time.perf_counter()
        probability: float | None = None
        try:
            async with (
                aclosing(llm.stream(messages, max_tokens=1)) as tokens,
                aclosing(_until(tokens, deadline)) as timed,
            ):
                async for token in timed:
                    probability = p_yes(token.top)
                    break
        except LLMError as exc:
            log.warning("%s call failed: %s", name, exc)
        timings[name] = _ms(started)
        return probability

    def _judged_sentences(
        self, retrieval: Retrieval, parser: ReplyParser, composition: Composition
    ) -> list[int]:
        """The sentences the judge is asked about.

        Those the answer cites; or else the first the reply labelled; or else the best
        retrieved one.
        """
        if composition.cited:
            return composition.cited
        untrusted = self.grounder.untrusted
        for claim in claims_of(parser.raw, parser.context):
            hinted = sorted(i for i in claim.hints if i not in untrusted)
            if hinted:
                return hinted[:1]
        best = [c.index for c in retrieval.candidates if c.index not in untrusted]
        return best[:1]

    async def _llm_events(
        self,
        llm: ChatModel,
        retrieval: Retrieval,
        passages: list[Passage],
        timings: dict[str, float],
        started: float,
        deadline: float,
    ) -> AsyncGenerator[AskEvent, None]:
        context, messages = self._prompt(retrieval)
        parser = ReplyParser(context)
        composition = Composition(self.index.sentences)
        # With the judge on, nothing is shown before it has spoken: the reply is verified
        # as it streams, and released once it is complete and judged.
        hold = self.settings.support_judge
        llm_started = time.perf_counter()
        failure: LLMError | None = None
        confidence: float | None = None
        unsure = False
        try:
            async with (
                aclosing(llm.stream(messages, max_tokens=self.settings.llm_max_tokens)) as tokens,
                aclosing(_until(tokens, deadline)) as timed,
            ):
                async for token in timed:
                    if "first_token" not in timings:
                        timings["first_token"] = _ms(llm_started)
                        confidence = answerability(token.top)
                        threshold = self.settings.min_answerability
                        if confidence is not None and confidence < threshold:
                            unsure = True  # stop generating: the answer would be withheld
                            break
                    claims = parser.feed(token.text)
                    if claims:
                        events = await anyio.to_thread.run_sync(
                            self._settle, retrieval, claims, context, composition, not hold
                        )
                        if events:
                            timings.setdefault("first_text", _ms(started))
                        for event in events:
                            yield event
        except LLMError as exc:
            log.warning("LLM failed: %s", exc)
            failure = exc
        timings["llm"] = _ms(llm_started)
        if failure is None and not unsure:
            verify_started = time.perf_counter()
            log.debug("LLM reply of %d characters", len(parser.raw))
            events = await anyio.to_thread.run_sync(
                self._settle, retrieval, parser.finish(), context, composition, not hold
            )
            timings["verify"] = _ms(verify_started)
            for event in events:
                yield event
        elif composition.released_parts:
            yield StreamFailed("the LLM stopped part-way; the answer is what was verified so far")
        if composition.released_parts:
            degraded = failure is not None
            response = _composed(composition, passages, "llm", timings, degraded=degraded)
        elif failure is not None:
            response = self.extractive(
                retrieval, passages, timings, degraded=True, because=Abstention.LLM_FAILED
            )
        elif unsure:
            response = self._abstain("llm", passages, timings, Abstention.UNSURE)
        else:
            response = await self._judged(
                llm, retrieval, parser, composition, passages, timings, started, deadline
            )
        response = msgspec.structs.replace(response, answerability=confidence)
        timings["total"] = _ms(started)
        shown = composition.released_parts > 0
        for event in _replay(response, text=not shown, after=composition.released_citations):
            yield event

    async def _judged(
        self,
        llm: ChatModel,
        retrieval: Retrieval,
        parser: ReplyParser,
        composition: Composition,
        passages: list[Passage],
        timings: dict[str, float],
        started: float,
        deadline: float,
    ) -> AskResponse:
        """The answer to a complete reply none of which has been shown yet.

        The judge is asked about the reply's sentences, and ``Grounder.judged`` decides.
        A held-back reply given after all is given as written when its verified claims
        were held back only as off point ("alliance" for "allied"), otherwise as the
        judged sentence whole. Without a judgement (off, or no logprobs), a held-back
        reply falls back to ``_without_llm_answer``.
        """
        because = await anyio.to_thread.run_sync(
            self._held_back_because, retrieval, parser, composition
        )
        judged_on = self._judged_sentences(retrieval, parser, composition)
        support: float | None = None
        if self.settings.support_judge and judged_on:
            name = "judge" if because is None else "second_opinion"
            support = await self._p_yes(llm, judged_on, retrieval.question, deadline, timings, name)
        if because is not None and support is None:
            return await anyio.to_thread.run_sync(
                self._without_llm_answer, retrieval, because, composition, passages, timings
            )
        verdict = self.grounder.judged(because, support)
        if verdict is not None:
            response = self._abstain("llm", passages, timings, verdict)
        else:
            if because is None or (because is Abstention.OFF_POINT and composition.parts):
                given = composition
            else:
                given = Composition(self.index.sentences)
                given.add([self._whole(self.retriever.candidate(retrieval, i)) for i in judged_on])
            timings.setdefault("first_text", _ms(started))
            response = _composed(given, passages, "llm", timings, degraded=False)
        return msgspec.structs.replace(response, support=support)

    def _whole(self, candidate: Candidate) -> VerifiedClaim:
        """A candidate sentence as a claim of its own, verbatim."""
        return VerifiedClaim(self.index.sentences[candidate.index].text, candidate.index,
                             candidate.evidence)  # fmt: skip

    def _settle(
        self,
        retrieval: Retrieval,
        claims: Sequence[Claim],
        context: list[int],
        composition: Composition,
        release: bool,
    ) -> list[AskEvent]:
        """Verify complete claims and, if ``release``, release what may now be shown.

        Parts wait until the sentences cited so far bear on the question and the text
        holds what the question asks for (``Grounder.shortfall``). Once that passes, every
        later part is released as soon as it is verified, and the final answer keeps
        all of them.
        """
        composition.add(self.grounder.verify(retrieval.question, claims, context))
        if not release or not composition.pending:
            return []
        if not composition.released_parts and self.grounder.shortfall(
            retrieval, composition.statement, composition.cited
        ):
            return []  # checked before the first release only; later parts only add
        text, citations = composition.release()
        return [AnswerDelta(text), *(CitationFound(n, c) for n, c in citations)]

    def _held_back_because(
        self, retrieval: Retrieval, parser: ReplyParser, composition: Composition
    ) -> Abstention | None:
        """Why a complete reply, none of it shown yet, may not be given; None if it may."""
        if not composition.parts:
            return Abstention.REFUSED if parser.refused else Abstention.UNSUPPORTED
        return self.grounder.shortfall(retrieval, composition.statement, composition.cited)

    def _without_llm_answer(
        self,
        retrieval: Retrieval,
        because: Abstention,
        composition: Composition,
        passages: list[Passage],
        timings: dict[str, float],
    ) -> AskResponse:
        """Abstain for ``because``, unless a sentence plainly answers.

        The reply gave no answer that could be shown. The small model refuses some
        answerable questions and misreads others; when a sentence holds nearly all of the
        question's terms, that sentence is the answer.
        """
        if because is Abstention.MISSING_ASKED:
            # The reply dropped a figure or list items that its own sentences hold: those
            # sentences, whole, are the next candidates.
            cited = [self.retriever.candidate(retrieval, i) for i in composition.cited]
            response = self.extractive(retrieval, passages, timings, because=because, tries=cited)
            if response.answerable:
                return response
        best = retrieval.candidates[0] if retrieval.candidates else None
        if best is None or best.lexical < self.settings.refusal_override_coverage:
            return self._abstain("llm", passages, timings, because)
        return self.extractive(retrieval, passages, timings, because=because)


async def _until(
    tokens: AsyncGenerator[Token, None], deadline: float
) -> AsyncGenerator[Token, None]:
    """The tokens that arrive before ``deadline`` (monotonic); past it, an LLMError."""
    while True:
        try:
            with anyio.fail_after(max(deadline - time.monotonic(), 0.0)):
                token = await anext(tokens)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise LLMError("the LLM passed its deadline") from None
        yield token


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
