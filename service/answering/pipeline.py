"""The answering pipeline: retrieve, reply, ground, judge, compose, as a stream of events.

Each step lives in its own module: ``retrieve`` (candidates and evidence), ``reply`` (the
LLM's reply cut into claims), ``ground`` (claim support, whether the cited sentences
answer, and every reason to abstain), ``judge`` (the LLM's yes/no verdicts), ``compose``
(answer text, markers, citations). This module runs them in order over one
:class:`Asking`, the state of one question, and turns the result into events.

The :class:`Answerer` lives as long as the process. It reads the current :class:`Reading`
(an index with its retriever and grounder); a write swaps the reading, and a question
keeps the reading it started with.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace

import anyio.to_thread
import msgspec

from index import CorpusIndex, Document, Embedder, build_index, document_key, split_key
from service.answering.compose import Composition, VerifiedClaim
from service.answering.ground import Abstention, Grounder, answerability
from service.answering.instructions import document_instructions
from service.answering.judge import gives_orders, screen_documents, supports
from service.answering.language import abstain_text, language_of
from service.answering.phrase import one_item_of, phrase_of
from service.answering.prompts import render_answer_prompt
from service.answering.reading import Reading, Scope
from service.answering.reply import Claim, ReplyParser, claims_of
from service.answering.retrieve import Candidate, Retrieval, Retriever
from service.answering.shards import Shards
from service.answering.translate import Translations, render_quotes
from service.answering.verdict import (
    Otherwise,
    asks_yes_or_no,
    judge_verdict,
    settling_clauses,
    stated_otherwise,
    through_the_asked,
    with_verdict,
    without_verdict,
)
from service.errors import BusyError, LLMError
from service.llm import ChatModel, QueuedChatModel, until
from service.observe import (
    INDEX_DOCUMENTS,
    INDEX_SEGMENTS,
    INDEX_SENTENCES,
    elapsed_ms,
    record_answer,
)
from service.schemas import (
    AnswerMode,
    AskResponse,
    Citation,
    GivenDocument,
    Passage,
    Verdict,
)
from service.settings import Settings

__all__ = [
    "AnswerDelta",
    "AnswerDone",
    "Answerer",
    "AskEvent",
    "Asking",
    "CitationFound",
    "StreamFailed",
]

log = logging.getLogger(__name__)

_EXTRACTIVE_TRIES = 3  # candidates tried, best first, for a sentence that answers on its own
# A quote this short asks the judge for no phrase: 3 in 4 SQuAD gold answers are 4 words or fewer.
_PHRASE_WORDS = 4


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


@dataclass
class Asking:
    """The state of one question as it goes through the steps."""

    question: str
    top_k: int
    mode: AnswerMode
    reading: Reading  # the index the question started with, kept to its end
    language: str = "en"  # the question's; answers and abstentions are written in it
    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)
    retrieval: Retrieval = field(init=False)
    passages: list[Passage] = field(init=False)
    deadline: float = field(init=False)  # monotonic; one answer's LLM time ends here
    verdict: Verdict | None = None  # a yes/no question's, once judged

    @property
    def yes_or_no(self) -> bool:
        """Whether the question asked of the documents is answered by yes or no."""
        return asks_yes_or_no(self.retrieval.question)


@dataclass
class Answerer:
    """The question-answering pipeline over the current index."""

    embedder: Embedder
    llm: ChatModel | None
    settings: Settings
    reading: Reading
    translations: Translations = field(default_factory=Translations, repr=False)
    # Over shards, each question reads the documents its search fetched (``shards.py``);
    # ``reading`` is then only what the routes that list documents see.
    shards: Shards | None = None
    _screening: asyncio.Task[None] | None = field(default=None, repr=False)

    @classmethod
    def over(
        cls, index: CorpusIndex, embedder: Embedder, llm: ChatModel | None, settings: Settings
    ) -> Answerer:
        """An answerer reading ``index``."""
        return cls(embedder, llm, settings, Reading.of(index, embedder, settings))

    @property
    def index(self) -> CorpusIndex:
        """The current index."""
        return self.reading.index

    @property
    def retriever(self) -> Retriever:
        """The current index's retriever."""
        return self.reading.retriever

    @property
    def grounder(self) -> Grounder:
        """The current index's grounder."""
        return self.reading.grounder

    def read(self, index: CorpusIndex) -> Reading:
        """The reading of a new version of the index (CPU work: run it in a thread)."""
        return Reading.of(index, self.embedder, self.settings)

    def reading_of(self, question: str, scope: Scope | None = None) -> Reading:
        """What ``question`` is answered from: the current reading, or a fetch from shards.

        Blocking: call it in a worker thread, or use :meth:`reading_for`.
        """
        return self.reading if self.shards is None else self.shards.read(question, scope)

    async def reading_for(self, question: str, scope: Scope | None = None) -> Reading:
        """:meth:`reading_of`, off the event loop when it goes to the shards.

        Documents fetched from shards that the LLM has not screened for planted orders yet
        are screened in the background, as one index's are after a write: until then their
        suspect sentences are kept out, and the verdicts stay with the documents.
        """
        if self.shards is None:
            return self.reading
        reading = await anyio.to_thread.run_sync(self.shards.read, question, scope)
        unscreened = any(document_instructions(reading.index, d) is None
                         for d in reading.index.documents)  # fmt: skip
        if self.llm is not None and unscreened and self._screening is None:
            self._screening = asyncio.create_task(self._screen_fetched(reading))
        return reading

    async def _screen_fetched(self, reading: Reading) -> None:
        try:
            await self.screen(reading)
        except Exception:  # screened again with the next question that fetches them
            log.exception("screening fetched documents failed")
        finally:
            self._screening = None

    def titles(self) -> dict[str, str]:
        """Each document's title by its id, over the shards when there are shards."""
        if self.shards is not None:
            return {doc_id: title for doc_id, title, _, _ in self.shards.listing}
        return {d.doc_id: d.title for d in self.index.documents.values()}

    def collections(self) -> set[str]:
        """The collections that hold documents."""
        return {split_key(key)[0] for key in self.titles()}

    def swap(self, reading: Reading) -> None:
        """Answer later questions from ``reading``; questions in flight keep theirs."""
        self.reading = reading
        INDEX_DOCUMENTS.set(len(reading.index.documents))
        INDEX_SENTENCES.set(len(reading.index.sentences))
        INDEX_SEGMENTS.set(len(reading.index.segments))

    @property
    def _translating(self) -> bool:
        """Whether questions cross languages (``CITEQA_CROSS_LANGUAGE=translate``)."""
        return self.settings.cross_language == "translate"

    def check_capacity(self, mode: AnswerMode = "llm") -> None:
        """Refuse at once, with :class:`BusyError`, a question the LLM queue has no room for."""
        if mode == "llm" and isinstance(self.llm, QueuedChatModel) and self.llm.full:
            raise BusyError()

    def _context(self, reading: Reading, candidates: list[Candidate]) -> list[int]:
        """Sentence indices shown to the LLM, in document order, less untrusted ones.

        A small corpus goes in whole, so the prompt prefix is the same for every
        question and the LLM server reuses its cache; a large one is cut to the
        best candidates (and, if ``context_evidence`` is set, to those near the best one's
        evidence).
        """
        untrusted = reading.grounder.untrusted
        if reading.corpus_chars <= self.settings.whole_corpus_chars:
            allowed = reading.allowed
            return [i for i in range(len(reading.sentences))
                    if i not in untrusted and (allowed is None or allowed[i])]  # fmt: skip
        settings = self.settings
        trusted = [c for c in candidates if c.index not in untrusted][: settings.context_sentences]
        floor = settings.context_evidence * max((c.evidence for c in trusted), default=0.0)
        return sorted(c.index for n, c in enumerate(trusted)
                      if n < settings.context_min_sentences or c.evidence >= floor)  # fmt: skip

    def _prompt(
        self, reading: Reading, retrieval: Retrieval
    ) -> tuple[list[int], list[dict[str, str]]]:
        """The context sentences shown to the LLM, and the chat messages that show them."""
        context = self._context(reading, retrieval.candidates)
        sources = [reading.sentences[i].text for i in context]
        return context, render_answer_prompt(sources, retrieval.question)

    def answer_prompt(self, question: str) -> list[dict[str, str]]:
        """The answer prompt the LLM is sent for an English ``question``, to time it bare."""
        reading = self.reading
        return self._prompt(reading, reading.retriever.retrieve(question))[1]

    def _abstain(
        self, q: Asking, because: Abstention, *, mode: AnswerMode = "llm", degraded: bool = False
    ) -> AskResponse:
        log.debug("abstained: %s", because)
        return AskResponse(abstain_text(q.language), False, [], q.passages, mode, degraded,
                           q.timings, abstained_because=because)  # fmt: skip

    def extractive(
        self,
        q: Asking,
        *,
        degraded: bool = False,
        because: Abstention = Abstention.WEAK_EVIDENCE,
        tries: list[Candidate] | None = None,
    ) -> AskResponse:
        """Answer with the first sentence of ``tries`` that answers on its own, or abstain.

        ``tries`` defaults to the best few retrieved candidates.
        """
        reading = q.reading
        for c in q.retrieval.candidates[:_EXTRACTIVE_TRIES] if tries is None else tries:
            sentence = reading.sentences[c.index]
            if c.index in reading.grounder.untrusted:
                continue
            if reading.grounder.shortfall(q.retrieval, sentence.text, [c.index]) is None:
                composition = reading.composition()
                composition.add([_whole(reading, c)])
                return _composed(composition, q, "extractive", degraded=degraded)
        return self._abstain(q, because, mode="extractive", degraded=degraded)

    async def screen(self, reading: Reading | None = None) -> None:
        """Have the LLM judge the suspect sentences of a reading's documents (``judge``).

        By default the current reading's; over shards, those a question fetched.
        """
        if self.llm is None:
            return
        reading = reading or self.reading
        await screen_documents(self.llm, reading.index, reading.grounder,
                               self.settings.llm_deadline_s)  # fmt: skip

    async def warm(self) -> None:
        """Screen the documents, then send one question so the LLM caches the prompt prefix."""
        if self.llm is None:
            return
        await self.screen()
        reading = self.reading
        _, messages = self._prompt(reading, reading.retriever.retrieve("warm-up"))
        try:
            await self.llm.complete(messages, max_tokens=1)
        except LLMError as exc:
            log.warning("LLM warm-up failed: %s", exc)

    async def ask(
        self,
        question: str,
        top_k: int = 5,
        mode: AnswerMode = "llm",
        scope: Scope | None = None,
        given: Sequence[GivenDocument] | None = None,
    ) -> AskResponse:
        """Answer ``question`` with verified citations, or abstain."""
        async for event in self.ask_events(question, top_k, mode, scope, given):
            if isinstance(event, AnswerDone):
                return event.response
        raise AssertionError("ask_events ended without AnswerDone")  # pragma: no cover

    async def ask_events(
        self,
        question: str,
        top_k: int = 5,
        mode: AnswerMode = "llm",
        scope: Scope | None = None,
        given: Sequence[GivenDocument] | None = None,
    ) -> AsyncGenerator[AskEvent, None]:
        """Answer as a stream of verified text and citations, then the whole answer.

        Nothing unverified is ever yielded: each claim of the LLM's reply is held back
        until it is complete and verified and the claims so far bear on the question;
        then its text and its new citations go out together. The ``AnswerDelta`` texts,
        joined, equal the final answer, and ``AnswerDone`` is what :meth:`ask` returns.
        """
        if given:
            reading = await anyio.to_thread.run_sync(self.reading_of_given, given)
        else:
            reading = await self.reading_for(question, scope)
        if scope is not None:
            reading = reading.scoped(scope)
        q = Asking(question, top_k, mode, reading, language_of(question))
        async with aclosing(self._events(q)) as events:
            async for event in events:
                if isinstance(event, AnswerDone):
                    if reading.missing:  # answered without some shards' documents
                        event = AnswerDone(msgspec.structs.replace(event.response, degraded=True))
                    record_answer(event.response, "*" if scope is None else scope.label)
                yield event

    def reading_of_given(self, given: Sequence[GivenDocument]) -> Reading:
        """A reading of documents sent with a question, indexed for it alone, stored nowhere.

        Their sentences are checked for planted orders by the same rules as an index's, but
        not screened by the LLM: a suspect sentence is kept out of the prompt.
        """
        docs = [
            Document(f"given-{n}", d.title or f"given-{n}", d.text) for n, d in enumerate(given, 1)
        ]
        return Reading.of(build_index(docs, self.embedder), self.embedder, self.settings)

    async def _events(self, q: Asking) -> AsyncGenerator[AskEvent, None]:
        # Encoding and verification are CPU work: they run in worker threads so the
        # event loop keeps serving other requests meanwhile.
        q.deadline = time.monotonic() + self.settings.llm_deadline_s
        if q.reading.allowed is not None and not q.reading.allowed.any():
            q.passages = []
            for event in _replay(self._abstain(q, Abstention.OUT_OF_SCOPE, mode=q.mode)):
                yield event  # nothing in scope: nothing is searched
            return
        q.retrieval = await anyio.to_thread.run_sync(q.reading.retriever.retrieve, q.question)
        others = [language for language in q.reading.languages if language != q.language]
        found_in_own = (
            q.language in q.reading.languages and _best(q.retrieval) >= self.settings.min_evidence
        )  # evidence is not comparable across languages: a find in the question's own stands
        crossing = self._translating and others and not found_in_own
        if self.llm is not None and q.mode == "llm" and crossing:
            await self._across_languages(self.llm, q, others[:_TRANSLATIONS])
        q.passages = q.reading.retriever.passages(q.retrieval.candidates, q.top_k)
        q.timings["retrieve"] = elapsed_ms(q.started)
        if q.mode == "extractive" or self.llm is None:
            response = self.extractive(q, degraded=q.mode == "llm")
        elif await gives_orders(self.llm, q.question, q.deadline, q.timings):
            response = self._abstain(q, Abstention.INSTRUCTION)
        elif (unasked := q.reading.grounder.before_asking(q.retrieval)) is not None:
            response = self._abstain(q, unasked)
        else:
            async with aclosing(self._llm_events(self.llm, q)) as events:
                async for event in events:
                    yield event
            return
        q.timings["total"] = elapsed_ms(q.started)
        for event in _replay(response):
            yield event

    async def _across_languages(self, llm: ChatModel, q: Asking, languages: list[str]) -> None:
        """Search with the question in the documents' other languages; keep the best find.

        The question that found it is the one the steps after it ask: the reply is then a
        quote of its sentence in the sentence's language, rendered in the asker's at the end.
        Without a translation, the question as asked keeps what it found.
        """
        started = time.perf_counter()
        finds = []
        for language in languages:
            translated = await self.translations.translate(llm, q.question, language, q.deadline)
            if translated is not None:
                finds.append(
                    await anyio.to_thread.run_sync(q.reading.retriever.retrieve, translated)
                )
        if finds:
            q.retrieval = max(finds, key=_best)
        q.timings["translate"] = elapsed_ms(started)

    async def _rendered(self, llm: ChatModel, q: Asking, response: AskResponse) -> AskResponse:
        """The answer in the asker's language, each quote kept beside its rendering.

        Unchanged when the answer's documents are in that language, or when the rendering
        fails its checks (then the verified quotes are shown as they are).
        """
        if not response.citations or all(
            q.reading.language_of_document(document_key(c.collection, c.doc_id)) == q.language
            for c in response.citations
        ):
            return response
        parts = _PART.findall(response.answer)
        if not parts or " ".join(p[0] for p in parts) == "":
            return response
        started = time.perf_counter()
        renderings = await render_quotes(llm, [body for body, _, _ in parts], q.language,
                                         q.deadline, q.question)  # fmt: skip
        q.timings["render"] = elapsed_ms(started)
        if renderings is None:
            return response
        cjk = q.language in ("zh", "ja")
        opening, closing, stop = ("（“", "”）", "。") if cjk else (" (“", "”)", ".")
        answer = " ".join(
            f"{rendering.rstrip(_ENDERS)} [{n}]{opening}{body}{closing}{stop}"
            for rendering, (body, n, _) in zip(renderings, parts, strict=True)
        )
        return msgspec.structs.replace(response, answer=answer)

    async def _with_verdict(self, llm: ChatModel, q: Asking, response: AskResponse) -> AskResponse:
        """A yes/no question's answer, opened by the LLM's verdict on its cited sentences.

        The support judge has given it already when it judged those sentences.
        """
        if q.verdict is None:
            texts = [c.text for c in response.citations]
            judged = await judge_verdict(llm, texts, q.retrieval.question, q.deadline, q.timings)
            if judged is None:
                return response
            q.verdict = judged.verdict
        answer = with_verdict(response.answer, q.verdict, q.language)
        return msgspec.structs.replace(response, answer=answer, verdict=q.verdict)

    def _judged_sentences(
        self, q: Asking, parser: ReplyParser, composition: Composition
    ) -> list[int]:
        """The sentences the judge is asked about.

        Those the answer cites; or else the first the reply labelled; or else the best
        retrieved one. For a yes/no question, first a sentence among those it cites, then
        among the passages, that states otherwise than the question (``stated_otherwise``).
        """
        untrusted = q.reading.grounder.untrusted
        if q.yes_or_no:
            # A sentence that states otherwise ("five brands" for "ten brands", or for "Is
            # Nissan a brand …?") settles it, whichever the reply cited.
            passages = [c.index for c in q.retrieval.candidates[: q.top_k]]
            among = dict.fromkeys([*composition.cited, *passages])
            trusted = [i for i in among if i not in untrusted]
            texts = [q.reading.sentences[i].text for i in trusted]
            otherwise = stated_otherwise(q.retrieval.question, texts)
            if otherwise is not None:
                return [trusted[otherwise.sentence]]
        if composition.cited:
            return composition.cited
        # A bare "Yes [S1]" says nothing its label could be checked against.
        for claim in [] if q.yes_or_no else claims_of(parser.raw, parser.context):
            hinted = sorted(i for i in claim.hints if i not in untrusted)
            if hinted:
                return hinted[:1]
        best = [c.index for c in q.retrieval.candidates if c.index not in untrusted]
        return best[:1]

    async def _llm_events(self, llm: ChatModel, q: Asking) -> AsyncGenerator[AskEvent, None]:
        timings = q.timings
        context, messages = self._prompt(q.reading, q.retrieval)
        parser = ReplyParser(context)
        composition = q.reading.composition()
        # With the judge on, nothing is shown before it has spoken: the reply is verified
        # as it streams, and released once it is complete and judged.
        # An answer that may be rendered in another language is held whole as well.
        across = q.retrieval.question != q.question or q.language != q.reading.language
        # A yes/no question's verdict opens its answer, so the answer waits for it.
        hold = self.settings.support_judge or (across and self._translating) or q.yes_or_no
        llm_started = time.perf_counter()
        failure: LLMError | None = None
        confidence: float | None = None
        unsure = False
        try:
            async with (
                aclosing(llm.stream(messages, max_tokens=self.settings.llm_max_tokens)) as tokens,
                aclosing(until(tokens, q.deadline)) as timed,
            ):
                async for token in timed:
                    if "first_token" not in timings:
                        timings["first_token"] = elapsed_ms(llm_started)
                        confidence = answerability(token.top)
                        threshold = self.settings.min_answerability
                        if confidence is not None and confidence < threshold:
                            unsure = True  # stop generating: the answer would be withheld
                            break
                    claims = parser.feed(token.text)
                    if claims:
                        events = await anyio.to_thread.run_sync(
                            _settle, q, claims, context, composition, not hold
                        )
                        if events:
                            timings.setdefault("first_text", elapsed_ms(q.started))
                        for event in events:
                            yield event
        except LLMError as exc:
            log.warning("LLM failed: %s", exc)
            failure = exc
        timings["llm"] = elapsed_ms(llm_started)
        if failure is None and not unsure:
            verify_started = time.perf_counter()
            log.debug("LLM reply of %d characters", len(parser.raw))
            events = await anyio.to_thread.run_sync(
                _settle, q, parser.finish(), context, composition, not hold
            )
            timings["verify"] = elapsed_ms(verify_started)
            for event in events:
                yield event
        elif composition.released_parts:
            yield StreamFailed("the LLM stopped part-way; the answer is what was verified so far")
        if composition.released_parts:
            response = _composed(composition, q, "llm", degraded=failure is not None)
        elif failure is not None:
            response = self.extractive(q, degraded=True, because=Abstention.LLM_FAILED)
        elif unsure:
            response = self._abstain(q, Abstention.UNSURE)
        else:
            response = await self._judged(llm, q, parser, composition)
        if response.answerable and not composition.released_parts and self._translating:
            response = await self._rendered(llm, q, response)
        if response.answerable and q.yes_or_no:
            response = await self._with_verdict(llm, q, response)
        response = msgspec.structs.replace(response, answerability=confidence)
        timings["total"] = elapsed_ms(q.started)
        shown = composition.released_parts > 0
        for event in _replay(response, text=not shown, after=composition.released_citations):
            yield event

    async def _judged(
        self, llm: ChatModel, q: Asking, parser: ReplyParser, composition: Composition
    ) -> AskResponse:
        """The answer to a complete reply none of which has been shown yet.

        The judge is asked about the reply's sentences, and ``Grounder.judged`` decides.
        A held-back reply given after all is given as written when its verified claims
        were held back only as off point ("alliance" for "allied"), otherwise as the
        judged sentence whole. Without a judgement (off, or no logprobs), a held-back
        reply falls back to ``_without_llm_answer``.
        """
        reading = q.reading
        because = await anyio.to_thread.run_sync(_held_back_because, q, parser, composition)
        judged_on = self._judged_sentences(q, parser, composition)
        # The given answer is the reply's quotes, or else the judged sentences whole.
        quoted = because is None or (because is Abstention.OFF_POINT and bool(composition.parts))
        support: float | None = None
        phrase = ""  # the judge's shortest phrase that answers, after its yes
        otherwise: Otherwise | None = None  # a yes/no question's sentence's words that say no
        unjudged = False  # the judge was to speak and did not before the deadline
        if self.settings.support_judge and judged_on:
            name = "judge" if because is None else "second_opinion"
            texts = [reading.sentences[i].text for i in judged_on]
            question = q.retrieval.question
            if q.yes_or_no:  # whether the text settles it, and which way
                judged = await judge_verdict(llm, texts, question, q.deadline, q.timings, name)
                if judged is not None:
                    support, q.verdict, otherwise = judged.support, judged.verdict, judged.otherwise
            else:
                wanted = self.settings.shortest_phrase and not (
                    quoted and _phrase_sized(composition)
                )
                judgement = await supports(llm, texts, question, q.deadline, q.timings, name,
                                           phrase=wanted)  # fmt: skip
                if judgement is not None:
                    support, phrase = judgement.support, judgement.phrase
            unjudged = support is None and time.monotonic() >= q.deadline
        if because is not None and support is None:
            return await anyio.to_thread.run_sync(self._without_llm_answer, q, because, composition)
        verdict = reading.grounder.judged(because, support)
        if verdict is not None:
            response = self._abstain(q, verdict)
        else:
            if quoted:
                given = composition
            else:
                given = reading.composition()
                given.add([_whole(reading, reading.retriever.candidate(q.retrieval, i))
                           for i in judged_on])  # fmt: skip
            if support is not None and phrase:
                given = _shortest(q, given, phrase, support)
            if support is not None and otherwise is not None:
                sentence = judged_on[otherwise.sentence]
                text = reading.sentences[sentence].text[otherwise.start : otherwise.end]
                given = _quoting(q, VerifiedClaim(text, sentence, support))
            elif q.yes_or_no:
                given = _settling(q, given)
            q.timings.setdefault("first_text", elapsed_ms(q.started))
            response = _composed(given, q, "llm", degraded=unjudged)
        return msgspec.structs.replace(response, support=support)

    def _without_llm_answer(
        self, q: Asking, because: Abstention, composition: Composition
    ) -> AskResponse:
        """Abstain for ``because``, unless a sentence plainly answers.

        The reply gave no answer that could be shown. The small model refuses some
        answerable questions and misreads others; when a sentence holds nearly all of the
        question's terms, that sentence is the answer.
        """
        if because is Abstention.MISSING_ASKED:
            # The reply dropped a figure or list items that its own sentences hold: those
            # sentences, whole, are the next candidates.
            cited = [q.reading.retriever.candidate(q.retrieval, i) for i in composition.cited]
            response = self.extractive(q, because=because, tries=cited)
            if response.answerable:
                return response
        best = q.retrieval.candidates[0] if q.retrieval.candidates else None
        if best is None or best.lexical < self.settings.refusal_override_coverage:
            return self._abstain(q, because)
        return self.extractive(q, because=because)


# One part of a composed answer: its quote, its marker's number, its closing punctuation.
_PART = re.compile(r"(.+?) \[(\d+)\]([.!?;:]?)(?= |$)")
_ENDERS = ".!?;。！？；"
_TRANSLATIONS = 2  # at most this many other languages a question is searched in


def _best(retrieval: Retrieval) -> float:
    return retrieval.candidates[0].evidence if retrieval.candidates else 0.0


def _whole(reading: Reading, candidate: Candidate) -> VerifiedClaim:
    """A candidate sentence as a claim of its own, verbatim."""
    return VerifiedClaim(reading.sentences[candidate.index].text, candidate.index,
                         candidate.evidence)  # fmt: skip


def _phrase_sized(composition: Composition) -> bool:
    """Whether the verified reply is one claim short enough to need no shorter phrase."""
    return len(composition.claims) == 1 and len(composition.claims[0].split()) <= _PHRASE_WORDS


def _shortest(q: Asking, given: Composition, reply: str, support: float) -> Composition:
    """The answer as the judge's shortest phrase of its cited sentences, if that passes.

    The phrase shortens the verified answer, never replaces it: it must overlap a quote of
    it (the model asked for a phrase alone picks other names of the sentence: "China" for
    what the two sides share), and unless it copies its sentence word for word, be shorter.
    Nor does it cut a list the answer gives ("Content and channels" of "brand strategy 、
    Content and channels 、 …").
    """
    cited = given.cited
    texts = [q.reading.sentences[i].text for i in cited]
    phrase = phrase_of(reply, texts, q.retrieval.question)
    if phrase is None or not given.overlaps(cited[phrase.sentence], phrase.quote):
        return given
    if "、" in given.statement and one_item_of(phrase.quote, texts[phrase.sentence]):
        return given
    if not phrase.quote.copied and len(phrase.quote.text.split()) >= len(given.statement.split()):
        return given
    return _quoting(q, VerifiedClaim(phrase.quote.text, cited[phrase.sentence], support))


def _settling(q: Asking, given: Composition) -> Composition:
    """A yes/no answer's quotes without the clauses at their edges that do not bear on it.

    A yes quote also ends at the last word the question asks about (``through_the_asked``).
    """
    question = q.retrieval.question
    sentence_of = {n: i for i, n in given.numbers.items()}
    claims = []
    for body, n in zip(given.claims, given.markers, strict=True):
        quote = settling_clauses(body, question)
        if q.verdict == "yes":
            quote = through_the_asked(quote, question)
        claims.append(VerifiedClaim(quote, sentence_of[n], given.citations[n - 1].score))
    return _quoting(q, *claims)


def _quoting(q: Asking, *claims: VerifiedClaim) -> Composition:
    """An answer of just these claims, in place of the one composed so far."""
    composition = q.reading.composition()
    composition.add(claims)
    return composition


def _settle(
    q: Asking,
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
    grounder = q.reading.grounder
    if q.yes_or_no:
        # The reply's own yes or no is not trusted, and its claim restates the question
        # ("Renault group is allied with Nissan"): it is quoted as the evidence for it.
        claims = [replace(c, text=without_verdict(c.text)) for c in claims]
        composition.add(grounder.verify("", claims, context, statements=True))
    else:
        composition.add(grounder.verify(q.retrieval.question, claims, context))
    if not release or not composition.pending:
        return []
    if not composition.released_parts and grounder.shortfall(
        q.retrieval, composition.statement, composition.cited
    ):
        return []  # checked before the first release only; later parts only add
    text, citations = composition.release()
    return [AnswerDelta(text), *(CitationFound(n, c) for n, c in citations)]


def _held_back_because(
    q: Asking, parser: ReplyParser, composition: Composition
) -> Abstention | None:
    """Why a complete reply, none of it shown yet, may not be given; None if it may."""
    if not composition.parts:
        return Abstention.REFUSED if parser.refused else Abstention.UNSUPPORTED
    return q.reading.grounder.shortfall(q.retrieval, composition.statement, composition.cited)


def _composed(
    composition: Composition, q: Asking, mode: AnswerMode, *, degraded: bool
) -> AskResponse:
    return AskResponse(
        composition.answer, True, composition.citations, q.passages, mode, degraded, q.timings,
        figures=composition.figures,
    )  # fmt: skip


def _replay(response: AskResponse, *, text: bool = True, after: int = 0) -> Iterator[AskEvent]:
    """Events for a finished answer: its text (unless already shown), unsent citations, done."""
    if text and response.answer:
        yield AnswerDelta(response.answer)
    for number, citation in enumerate(response.citations[after:], after + 1):
        yield CitationFound(number, citation)
    yield AnswerDone(response)
