"""One corpus split over shards answers as one index of it does: same ranked sentences and
scores (BM25 statistics taken over every shard first), same answers, same digest; and a
shard that fails leaves a degraded answer from the others."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from index import (
    MAX_SEGMENTS,
    Bm25Statistics,
    CorpusIndex,
    Document,
    Embedder,
    build_index,
    document_key,
    load_snapshot,
    read_documents,
    save_snapshot,
)
from service import Filter, Settings, ShardReplica, reshard
from service.answering import (
    Answerer,
    FetchedDocument,
    Scope,
    ShardClient,
    ShardFinds,
    ShardReader,
    Shards,
    ShardSummary,
    ShardWriteError,
    ShardWritten,
    document_instructions,
    shard_of,
)
from service.llm import ScriptedChatModel, ScriptedReply
from tests.conftest import ARTICLE, ROOT, HashingEmbedder

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
    """The article by paragraph and a copy of the project's docs: a few hundred sentences."""
    (article,) = read_documents([ARTICLE])
    paragraphs = [p for p in article.text.split("\n\n") if p.strip()]
    docs = [Document(f"article-{i}", f"Article part {i}", p) for i, p in enumerate(paragraphs)]
    return docs + read_documents([ROOT / "tests" / "data" / "project-docs.jsonl"])


def _assert_same_ranking(
    got: Sequence[str], got_scores: Any, want: Sequence[str], want_scores: Any
) -> None:
    """Same scores, and the same sentences at each score.

    Sentences with exactly equal scores may come in another order, and those tied with the
    last one kept may differ: which of them one index keeps depends on its layout.
    """
    got_scores, want_scores = [float(s) for s in got_scores], [float(s) for s in want_scores]
    assert len(got) == len(want)
    assert got_scores == pytest.approx(want_scores, abs=1e-6)
    last = want_scores[-1] if want_scores else 0.0
    above = {i: s for i, s in zip(want, want_scores, strict=True) if s > last + 1e-6}
    found = {i: s for i, s in zip(got, got_scores, strict=True) if s > last + 1e-6}
    assert set(found) == set(above)
    assert all(abs(found[i] - above[i]) <= 1e-6 for i in above)


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
        assert len(got) >= 30
        _assert_same_ranking(got, got_scores, want, want_scores)
        # BM25 alone, on the union's statistics, scores as one index does.
        assert shards.bm25_statistics(question) == one.index.lexical.statistics(question)
        reading = sharded.reading_of(question)
        scores, ids = reading.index.lexical.search(question, 10, shards.bm25_statistics(question))
        one_scores, one_ids = one.index.lexical.search(question, 10)
        found = [reading.index.sentences[i].sentence_id for i in ids]
        _assert_same_ranking(found, scores, [one.index.sentences[i].sentence_id for i in one_ids],
                             one_scores)  # fmt: skip
    assert shards.content_digest == one.index.content_digest
    assert len(reading.index.sentences) < len(one.index.sentences)  # only what was fetched


def test_three_shards_rank_a_scoped_question_as_one_index_does(corpus: Corpus) -> None:
    docs, embedder = corpus
    # Every other document in a collection of its own: the keys differ, the ids need not.
    docs = [d if n % 2 else msgspec.structs.replace(d, doc_id=document_key("team-b", d.doc_id))
            for n, d in enumerate(docs)]  # fmt: skip
    one = Answerer.over(build_index(docs, embedder), embedder, None, SETTINGS)
    shards = Shards([ShardReader(ix, f"s{i}") for i, ix in enumerate(_split(docs, 3, embedder))],
                    embedder, SETTINGS)  # fmt: skip
    sharded = Answerer.over(build_index([], embedder), embedder, None, SETTINGS)
    sharded.shards = shards
    # A selective filter (three documents of many, on whichever shards they live), and a
    # collection.
    named = Filter(doc_ids=[docs[1].name, docs[2].name, docs[-1].name])
    for scope in (Scope(None, named), Scope(frozenset({"team-b"}))):
        keys = {d.doc_id for d in docs if scope.holds(d.doc_id)}
        assert 0 < len(keys) < len(docs)
        for question in QUESTIONS:
            want_reading = one.reading_of(question).scoped(scope)
            got_reading = sharded.reading_of(question, scope).scoped(scope)
            want = want_reading.retriever.retrieve(question).candidates
            got = got_reading.retriever.retrieve(question).candidates
            ids = [got_reading.sentences[c.index].sentence_id for c in got]
            assert ids and {got_reading.sentences[c.index].doc_id for c in got} <= keys
            _assert_same_ranking(
                ids, [c.evidence for c in got],
                [want_reading.sentences[c.index].sentence_id for c in want],
                [c.evidence for c in want],
            )  # fmt: skip


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

    def version(self) -> str:
        raise ConnectionError("replica stopped")

    def content_rows(self) -> list[tuple[str, str, int, int]]:
        raise ConnectionError("replica stopped")

    def summary(self) -> ShardSummary:
        raise ConnectionError("replica stopped")

    def write(self, upserts: list[Document], deletes: list[str]) -> ShardWritten:
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


class SlowShard:
    """A shard whose searches take longer than the front waits, as an overloaded one's do."""

    def __init__(self, shard: ShardClient, delay_s: float) -> None:
        self.shard, self.name, self.delay_s = shard, shard.name, delay_s

    def __getattr__(self, name: str) -> object:
        return getattr(self.shard, name)

    def search(self, *args: Any) -> ShardFinds:
        time.sleep(self.delay_s)
        return self.shard.search(*args)


async def test_a_shard_slower_than_its_deadline_is_left_out_and_named(corpus: Corpus) -> None:
    docs, embedder = corpus
    indexes = _split(docs, 3, embedder)
    holder = next(i for i, ix in enumerate(indexes) if any("Lingke" in s.text for s in
                                                            ix.sentences))  # fmt: skip
    slow = (holder + 1) % 3
    clients: list[ShardClient] = [ShardReader(ix, f"s{i}") for i, ix in enumerate(indexes)]
    clients[slow] = SlowShard(clients[slow], delay_s=1.0)
    settings = SETTINGS.model_copy(update={"shard_timeout_s": 0.2})
    answerer = Answerer.over(build_index([], embedder), embedder, None, settings)
    answerer.shards = Shards(clients, embedder, settings)
    started = time.monotonic()
    response = await answerer.ask("Which platform underpins the Korean models?",
                                  mode="extractive")  # fmt: skip
    assert time.monotonic() - started < 1.0  # the answer did not wait for the slow shard
    assert response.degraded and "CMA" in response.answer
    assert answerer.shards.missing == {f"s{slow}"}


def _replicas(
    docs: Sequence[Document], n: int, embedder: Embedder, root: Path
) -> list[ShardReplica]:
    """``n`` shard directories holding ``docs`` as the front routes them, each served."""
    replicas = []
    for i, index in enumerate(_split(docs, n, embedder)):
        save_snapshot(index, root / f"s{i}")
        replicas.append(ShardReplica(str(root / f"s{i}"), f"s{i}", 60.0, embedder))
    return replicas


def test_writes_go_to_the_home_shard_and_a_delete_to_where_the_document_lives(
    tmp_path: Path,
) -> None:
    embedder = HashingEmbedder()
    replicas = _replicas(_corpus(), 3, embedder, tmp_path)
    shards = Shards(replicas, embedder, SETTINGS)
    memo = Document("memo", "Memo", "The plant in Valladolid opens in May. It builds engines.")
    written = shards.write([memo], [])
    assert [row[0] for row in written.documents] == ["memo"] and written.documents[0][1] == 2
    home = replicas[shard_of("memo", 3)]
    assert "memo" in home.reader.index.documents  # durable in the home shard's directory
    assert "memo" in load_snapshot(home.directory).documents
    assert sum("memo" in r.reader.index.documents for r in replicas) == 1
    reading = shards.read("Where is the plant that opens in May?")
    assert any("Valladolid" in s.text for s in reading.sentences)
    # A document placed on another shard before (by hand) moves home when it is replaced.
    stray = next(r for r in replicas if r is not home)
    stray.write([Document("memo-2", "Memo 2", "An old note.")], [])
    shards.refresh()
    shards.write([Document("memo-2", "Memo 2", "A new note.")], [])
    holders = [r.name for r in replicas if "memo-2" in r.reader.index.documents]
    assert holders == [shards.home_of("memo-2")]
    shards.write([], ["memo"])
    assert not any("memo" in r.reader.index.documents for r in replicas)
    for replica in replicas:
        replica.close()


def test_a_write_a_shard_does_not_take_is_an_error_naming_it(tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    replicas: list[ShardClient] = list(_replicas(_corpus(), 3, embedder, tmp_path))
    down = shard_of("memo", 3)
    replicas[down] = ReadOnly(replicas[down])
    shards = Shards(replicas, embedder, SETTINGS)
    with pytest.raises(ShardWriteError, match=replicas[down].name):
        shards.write([Document("memo", "Memo", "The plant opens in May.")], [])


class ReadOnly:
    """A shard that serves but refuses writes, as one on a read-only mount would."""

    def __init__(self, shard: ShardClient) -> None:
        self.shard, self.name = shard, shard.name

    def __getattr__(self, name: str) -> object:
        return getattr(self.shard, name)

    def write(self, upserts: list[Document], deletes: list[str]) -> object:
        raise PermissionError("read-only file system")


def test_reshard_deals_documents_to_new_shards_keeping_sentence_ids(tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    docs = _corpus()
    one = build_index(docs, embedder)
    sources = []
    for i, index in enumerate(_split(docs, 3, embedder)):
        save_snapshot(index, tmp_path / f"s{i}")
        sources.append(tmp_path / f"s{i}")
    targets = reshard(sources, 2, tmp_path / "out")
    assert targets == [tmp_path / "out" / "shard-0", tmp_path / "out" / "shard-1"]
    moved = [load_snapshot(t) for t in targets]
    for k, index in enumerate(moved):
        assert all(shard_of(doc_id, 2) == k for doc_id in index.documents)
    shards = Shards([ShardReader(ix, f"n{k}") for k, ix in enumerate(moved)], embedder, SETTINGS)
    shards.refresh()
    assert shards.content_digest == one.content_digest  # same sentence ids and offsets
    kept = {s.sentence_id: one.vectors[i] for i, s in enumerate(one.sentences)}
    for index in moved:  # vectors moved, not embedded again
        for i, sentence in enumerate(index.sentences):
            assert (index.vectors[i] == kept[sentence.sentence_id]).all()
    with pytest.raises(ValueError, match="already holds an index"):
        reshard(sources, 2, tmp_path / "out")


async def test_documents_fetched_from_shards_are_screened_once_in_the_background() -> None:
    embedder = HashingEmbedder()
    docs = _corpus()
    # The LLM judges every suspect sentence harmless ("no": it gives no orders).
    llm = ScriptedChatModel(respond=lambda m: ScriptedReply(
        "no", (("no", math.log(0.9)), ("yes", math.log(0.1)))))  # fmt: skip
    answerer = Answerer.over(build_index([], embedder), embedder, llm, SETTINGS)
    clients = [ShardReader(ix, f"s{i}") for i, ix in enumerate(_split(docs, 3, embedder))]
    answerer.shards = Shards(clients, embedder, SETTINGS)
    question = "Which platform underpins the Korean models?"
    reading = await answerer.reading_for(question)
    assert answerer._screening is not None  # fetched documents nobody has screened yet
    await answerer._screening
    assert all(document_instructions(reading.index, d) is not None for d in reading.index.documents)
    again = await answerer.reading_for(question)  # the verdicts stayed with the documents
    assert answerer._screening is None and not again.grounder.untrusted


def test_a_new_shard_starts_empty_and_folds_its_segments_as_writes_come(tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    replica = ShardReplica(str(tmp_path / "s0"), "s0", 60.0, embedder)  # no index there yet
    assert replica.summary().sentences == 0 and load_snapshot(tmp_path / "s0").documents == {}
    for n in range(MAX_SEGMENTS + 3):
        replica.write([Document(f"memo-{n}", f"Memo {n}", f"Plant {n} opens in May.")], [])
    index = load_snapshot(tmp_path / "s0")
    assert len(index.documents) == MAX_SEGMENTS + 3 and len(index.segments) <= MAX_SEGMENTS
    replica.close()
