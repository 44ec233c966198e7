"""One corpus split over shards answers as one index of it does: same ranked sentences and
scores (BM25 statistics taken over every shard first), same answers, same digest; and a
shard that fails leaves a degraded answer from the others."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest

from index import Bm25Statistics, CorpusIndex, Document, Embedder, build_index, read_documents
from service import Settings
from service.answering import (
    Answerer,
    FetchedDocument,
    ShardFinds,
    ShardReader,
    Shards,
    ShardSummary,
    shard_of,
)
from service.llm import ScriptedChatModel
from tests.conftest import ARTICLE, ROOT

pytestmark = pytest.mark.anyio
QUESTIONS = [
    "Which platform underpins the Korean models?",
    "How many employees does Geely have?",
    "How do read replicas follow the writer's snapshots?",
    "What does the judge check before a claim is shown?",
    "Which settings limit the chat history?",
    "hybrid power market China South Korea",
]


def _corpus() -> list[Document]:
    """The article by paragraph and the project's own docs: a few hundred sentences."""
    (article,) = read_documents([ARTICLE])
    paragraphs = [p for p in article.text.split("\n\n") if p.strip()]
    docs = [Document(f"article-{i}", f"Article part {i}", p) for i, p in enumerate(paragraphs)]
    return docs + read_documents(sorted((ROOT / "docs").glob("*.md")))


def _split(docs: Sequence[Document], n: int, embedder: Embedder) -> list[CorpusIndex]:
    parts: list[list[Document]] = [[] for _ in range(n)]
    for doc in docs:
        parts[shard_of(doc.doc_id, n)].append(doc)
    assert all(parts), "every shard holds documents"
    return [build_index(part, embedder) for part in parts]


Corpus = tuple[list[Document], Embedder]


@pytest.fixture(scope="module")
def corpus(real_embedder: Embedder) -> Corpus:
    # The real embedder: the hashing one ties many scores, and the order of exactly equal
    # scores is the one thing that depends on how the corpus is laid out.
    return _corpus(), real_embedder


# whole_corpus_chars 0: the corpus is never put whole into the prompt, so a question reads
# only the documents its two rounds fetch.
SETTINGS = Settings(corpus=[ARTICLE], whole_corpus_chars=0, instruction_nearness=1.0)


def _ranked(answerer: Answerer, question: str) -> tuple[list[str], list[float]]:
    """The sentences retrieval ranks for ``question``, best first, and their evidence."""
    reading = answerer.reading_of(question)
    candidates = reading.retriever.retrieve(question).candidates
    ids = [reading.sentences[c.index].sentence_id for c in candidates]
    return ids, [c.evidence for c in candidates]


def test_three_shards_rank_as_one_index_with_the_same_scores(corpus: Corpus) -> None:
    docs, embedder = corpus
    one = Answerer.over(build_index(docs, embedder), embedder, None, SETTINGS)
    indexes = _split(docs, 3, embedder)
    shards = Shards([ShardReader(ix, f"s{i}") for i, ix in enumerate(indexes)], embedder,
                    SETTINGS)  # fmt: skip
    sharded = Answerer.over(build_index([], embedder), embedder, None, SETTINGS)
    sharded.shards = shards
    for question in QUESTIONS:
        (want, want_scores), (got, got_scores) = _ranked(one, question), _ranked(sharded, question)
        assert got == want and len(got) >= 30, question
        assert got_scores == pytest.approx(want_scores, abs=1e-6)
        # BM25 alone, on the union's statistics, scores as one index does.
        reading = sharded.reading_of(question)
        scores, ids = reading.index.lexical.search(question, 10, shards.bm25_statistics(question))
        one_scores, one_ids = one.index.lexical.search(question, 10)
        assert [reading.index.sentences[i].sentence_id for i in ids] == [
            one.index.sentences[i].sentence_id for i in one_ids]  # fmt: skip
        assert scores == pytest.approx(one_scores, abs=1e-6)
    assert shards.content_digest == one.index.content_digest
    assert len(reading.index.sentences) < len(one.index.sentences)  # only what was fetched


def test_shards_own_statistics_alone_would_score_differently(corpus: Corpus) -> None:
    docs, embedder = corpus
    one = build_index(docs, embedder)
    (first, *_) = _split(docs, 3, embedder)
    question = "hybrid power market"
    own = first.lexical.search(question, 5)[0][0]
    union = first.lexical.search(question, 5, one.lexical.statistics(question))[0][0]
    assert own != pytest.approx(union, abs=1e-6)


def _labelled(messages: list[dict[str, str]], needle: str) -> str | None:
    """The reply a reader would give: the sentence holding ``needle``, with its label."""
    prompt = "\n".join(m["content"] for m in messages)
    line = next((ln for ln in prompt.splitlines() if needle in ln and ln.startswith("[S")), None)
    if line is None or not messages[-1]["content"].startswith("Question"):
        return None
    label = re.match(r"\[S\d+\]", line)
    return f"They are based on the CMA platform {label.group(0) if label else ''}."


async def test_three_shards_give_the_same_answer_as_one_index(corpus: Corpus) -> None:
    docs, embedder = corpus
    question = "Which platform underpins the Korean models?"
    answers = []
    for sharded in (False, True):
        llm = ScriptedChatModel(respond=lambda m: _labelled(m, "Lingke"))
        index = build_index([] if sharded else docs, embedder)
        answerer = Answerer.over(index, embedder, llm, SETTINGS)
        if sharded:
            parts = _split(docs, 3, embedder)
            clients = [ShardReader(ix, f"s{i}") for i, ix in enumerate(parts)]
            answerer.shards = Shards(clients, embedder, SETTINGS)
        for mode in ("llm", "extractive"):
            answers.append(await answerer.ask(question, mode=mode))  # type: ignore[arg-type]
    one_llm, one_extractive, sharded_llm, sharded_extractive = answers
    assert one_llm.answerable and "CMA" in one_llm.answer
    for want, got in ((one_llm, sharded_llm), (one_extractive, sharded_extractive)):
        assert got.answer == want.answer
        assert [(c.sentence_id, c.start, c.end) for c in got.citations] == [
            (c.sentence_id, c.start, c.end) for c in want.citations]  # fmt: skip
        assert not got.degraded


class DownShard:
    """A shard whose every call fails, as a stopped replica's would."""

    def __init__(self, name: str) -> None:
        self.name = name

    def summary(self) -> ShardSummary:
        raise ConnectionError("replica stopped")

    def statistics(self, query: str) -> Bm25Statistics:
        raise ConnectionError("replica stopped")

    def search(self, vector: list[float], query: str, pool: int,
               statistics: Bm25Statistics) -> ShardFinds:  # fmt: skip
        raise ConnectionError("replica stopped")

    def documents(self, doc_ids: list[str]) -> list[FetchedDocument]:
        raise ConnectionError("replica stopped")


async def test_a_shard_that_is_down_leaves_a_degraded_answer_from_the_others(
    corpus: Corpus,
) -> None:
    docs, embedder = corpus
    indexes = _split(docs, 3, embedder)
    holder = next(i for i, ix in enumerate(indexes) if any("Lingke" in s.text for s in
                                                            ix.sentences))  # fmt: skip
    clients = [DownShard(f"s{i}") if i != holder else ShardReader(ix, f"s{i}")
               for i, ix in enumerate(indexes)]  # fmt: skip
    answerer = Answerer.over(build_index([], embedder), embedder, None, SETTINGS)
    answerer.shards = Shards(clients, embedder, SETTINGS)
    response = await answerer.ask("Which platform underpins the Korean models?",
                                  mode="extractive")  # fmt: skip
    assert response.degraded and "CMA" in response.answer
    assert answerer.shards.missing == {f"s{i}" for i in range(3) if i != holder}
