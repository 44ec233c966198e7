"""The answering steps called directly: the reply parser, the composition, and the pipeline
over a scripted model (no HTTP, no upstream)."""

from __future__ import annotations

import math
import threading
from collections.abc import AsyncGenerator, Sequence

import anyio
import anyio.to_thread
import pytest

from index import Document, Sentence, Vectors, build_index, read_documents, update_index
from service import ABSTAIN_TEXT, Settings
from service.answering import (
    AnswerDelta,
    AnswerDone,
    Answerer,
    CitationFound,
    Composition,
    ReplyParser,
    VerifiedClaim,
)
from service.llm import ScriptedChatModel, ScriptedReply, Token
from tests.conftest import ARTICLE, CMA, HashingEmbedder

pytestmark = pytest.mark.anyio
# The hashing embedder's vectors are no measure of meaning: only cue words make suspects.
SETTINGS = Settings(corpus=[ARTICLE], instruction_nearness=1.0)
YES = ScriptedReply("yes", (("yes", math.log(0.9)), ("no", math.log(0.1))))


def test_the_parser_hands_out_a_claim_once_its_label_has_arrived_whole() -> None:
    parser = ReplyParser(context=[10, 11, 12])
    assert parser.feed("The platform is CMA [") == []
    assert parser.feed("S") == []
    (claim,) = parser.feed("2].")
    assert claim.text == "The platform is CMA" and claim.hints == {11}
    assert parser.feed(" It is new") == []
    (last,) = parser.finish()
    assert last.text == "It is new" and last.hints == frozenset()
    assert parser.finish() == []  # nothing is handed out twice


def test_the_parser_drops_refusals_and_labels_outside_the_context() -> None:
    parser = ReplyParser(context=[4])
    assert parser.feed("NOT FOUND [S1]") == []
    assert parser.refused
    assert [c.hints for c in ReplyParser([4]).feed("CMA [S9].")] == [frozenset()]


def test_a_composition_numbers_sentences_once_and_releases_parts_in_order() -> None:
    sentences = [Sentence(f"s{i}", "doc", i * 10, i * 10 + 9, f"Sentence {i}.") for i in range(3)]
    composition = Composition(sentences)
    composition.add([VerifiedClaim("CMA", 2, 0.9)])
    text, citations = composition.release()
    assert text == "CMA [1]." and [(n, c.sentence_id) for n, c in citations] == [(1, "s2")]
    composition.add([VerifiedClaim("It is new!", 2, 0.8), VerifiedClaim("CMA", 2, 0.9)])
    composition.add([VerifiedClaim("Geely", 0, 0.7)])
    text, citations = composition.release()
    assert text == " It is new [1]! Geely [2]."  # the repeated claim is left out
    assert [(n, c.sentence_id) for n, c in citations] == [(2, "s0")]
    assert composition.answer == "CMA [1]. It is new [1]! Geely [2]."
    assert composition.cited == [0, 2] and not composition.pending


async def test_the_pipeline_streams_a_verified_quote_over_a_scripted_model() -> None:
    embedder = HashingEmbedder()
    index = build_index(read_documents([ARTICLE]), embedder)
    llm = ScriptedChatModel(respond=lambda messages: YES if len(messages) == 2 and
                            messages[1]["content"].startswith("Text:") else None)  # fmt: skip
    answerer = Answerer.over(index, embedder, llm, SETTINGS)
    await answerer.warm()  # the warm-up prompt shows how the sentences are labelled
    (line,) = [ln for ln in llm.prompts[-1][0]["content"].splitlines() if CMA in ln]
    llm.queue(f"They are based on the CMA platform {line.split()[0]}.")
    events = [e async for e in answerer.ask_events("Which platform underpins the Korean models?")]
    done = events[-1]
    assert isinstance(done, AnswerDone) and done.response.answerable
    shown = "".join(e.text for e in events if isinstance(e, AnswerDelta))
    assert shown == done.response.answer and "CMA" in shown
    (found,) = [e for e in events if isinstance(e, CitationFound)]
    assert CMA in found.citation.text
    assert done.response.support is not None and done.response.support > 0.8


class GatedEmbedder(HashingEmbedder):
    """Holds each query's encoding until the gate opens, once armed."""

    def __init__(self) -> None:
        self.armed = False
        self.entered, self.gate = threading.Event(), threading.Event()

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> Vectors:
        if self.armed:
            self.entered.set()
            self.gate.wait(5)
        return super().encode(texts, progress=progress)


async def test_a_write_swaps_the_reading_and_a_question_keeps_the_one_it_began_with() -> None:
    embedder = GatedEmbedder()
    index = build_index(read_documents([ARTICLE]), embedder)
    answerer = Answerer.over(index, embedder, None, SETTINGS)
    memo = Document("memo", "Memo", "The Wuhan plant opens in May.")
    # The new reading holds other sentences at every position: mixing the two would show.
    newer = answerer.read(
        update_index(index, embedder, upserts=[memo], deletes=list(index.documents))
    )
    question = "When does the Wuhan plant open?"
    embedder.armed = True
    async with anyio.create_task_group() as group:
        answers = []

        async def ask() -> None:
            answers.append(await answerer.ask(question, mode="extractive"))

        group.start_soon(ask)
        await anyio.to_thread.run_sync(embedder.entered.wait, 5)  # it has begun: swap now
        answerer.swap(newer)
        embedder.gate.set()
    assert answers[0].answer == ABSTAIN_TEXT  # it kept the index it began with
    after = await answerer.ask(question, mode="extractive")
    assert after.answerable and after.citations[0].doc_id == "memo"


class SlowJudge(ScriptedChatModel):
    """Answers at once, but its support judge never speaks before the deadline."""

    async def stream(
        self, messages: Sequence[dict[str, str]], *, max_tokens: int
    ) -> AsyncGenerator[Token, None]:
        if messages[0]["content"].startswith("You check whether a text answers"):
            await anyio.sleep(30)
        async for token in super().stream(messages, max_tokens=max_tokens):
            yield token


async def test_an_answer_the_judge_could_not_judge_in_time_is_marked_degraded() -> None:
    embedder = HashingEmbedder()
    index = build_index(read_documents([ARTICLE]), embedder)
    llm = SlowJudge()
    settings = SETTINGS.model_copy(update={"support_judge": True, "llm_deadline_s": 1.0})
    answerer = Answerer.over(index, embedder, llm, settings)
    await answerer.warm()
    (line,) = [ln for ln in llm.prompts[-1][0]["content"].splitlines() if CMA in ln]
    llm.queue(f"They are based on the CMA platform {line.split()[0]}.")
    response = await answerer.ask("Which platform underpins the Korean models?")
    assert response.answerable and response.support is None
    assert response.degraded  # shown unjudged: the client is told


@pytest.mark.parametrize("evidence", [0.0, 0.7])
async def test_a_large_corpus_prompt_holds_only_the_sentences_near_the_best(
    evidence: float,
) -> None:
    # Past whole_corpus_chars, the prompt carries the best sentences: at most 8, and past
    # the third only those whose evidence is near the best one's (prompt tokens are the cost).
    embedder = HashingEmbedder()
    index = build_index(read_documents([ARTICLE]), embedder)
    llm = ScriptedChatModel()
    settings = SETTINGS.model_copy(update={"whole_corpus_chars": 0, "context_evidence": evidence})
    answerer = Answerer.over(index, embedder, llm, settings)
    question = "Which platform underpins the Korean models?"
    prompt = answerer.answer_prompt(question)[0]["content"]
    sources = [ln for ln in prompt.splitlines() if ln.startswith("[S")]
    assert any(CMA in ln for ln in sources)
    if evidence == 0.0:
        assert len(sources) == 8
    else:
        assert 3 <= len(sources) < 8
