"""Retrieval: the candidate sentences for a question, each with its evidence.

Dense (FAISS) and, in hybrid mode, BM25 rankings pick a pool by reciprocal-rank fusion;
the pool is then ordered by evidence, which mixes dense cosine with the IDF-weighted share
of the question's terms that a sentence (with its title and the sentence before) holds.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from index import Allowed, Bm25Statistics, CorpusIndex, Embedder, Sentence, Vectors, split_key
from service.answering.measures import Terms, coverage, terms
from service.schemas import Passage, SentenceHit
from service.settings import Settings

__all__ = ["Candidate", "Retrieval", "Retriever", "term_counts"]

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
class Retrieval:
    """What retrieval found for one question; its vector is reused downstream."""

    question: str
    vector: Vectors
    terms: Terms
    candidates: list[Candidate]


def term_counts(sentences: list[Sentence]) -> Counter[str]:
    """How many of the sentences hold each evidence term."""
    return Counter(t for s in sentences for t in terms(s.text))


def idf_of(frequency: Mapping[str, int], sentences: int) -> dict[str, float]:
    """Each term's weight as evidence: rarer in the corpus, weightier."""
    return {t: math.log(1 + sentences / (1 + f)) for t, f in frequency.items()}


class Retriever:
    """Ranks an index's sentences for questions; holds the corpus-wide term statistics."""

    def __init__(
        self,
        index: CorpusIndex,
        embedder: Embedder,
        settings: Settings,
        *,
        idf: dict[str, float] | None = None,
        bm25: Callable[[str], Bm25Statistics] | None = None,
    ) -> None:
        """A retriever of ``index``, ranking with its own statistics by default.

        ``idf`` and ``bm25`` give those of a larger corpus instead (every shard's).
        """
        self.index = index
        self.embedder = embedder
        self.settings = settings
        self.bm25 = bm25
        if idf is None:
            # Rare words say more about whether a sentence answers a question than common
            # ones. Counted per document and kept across writes: a write counts only its own.
            frequency = index.derived_total("term_counts", term_counts)
            idf = idf_of(frequency, len(index.sentences))
        self.idf = idf
        self._titles = {d.doc_id: terms(d.title) for d in index.documents.values()}
        self.allowed: Allowed | None = None  # a scope's sentences; None: every sentence

    def scoped(self, allowed: Allowed) -> Retriever:
        """A copy of the retriever that finds only the sentences ``allowed`` holds.

        Term statistics stay the whole corpus's: a scope is a view of the corpus, and its
        rare words are as rare as they are there (a scope of three documents would make
        every word of them look rare, and sway the evidence checks' thresholds).
        """
        scoped = copy.copy(self)
        scoped.allowed = allowed
        return scoped

    def within(self, corpus: Allowed, idf: dict[str, float]) -> Retriever:
        """A copy that takes its term statistics from the ``corpus`` sentences alone.

        The collections a key reads are its whole corpus: documents outside them must not
        sway a score it sees (nor, through scores, say which words they hold).
        """
        scoped = copy.copy(self)
        scoped.idf = idf
        lexical = self.index.lexical
        scoped.bm25 = lambda question: lexical.statistics(question, within=corpus)
        return scoped

    def own_terms(self, sentence_index: int) -> Terms:
        """A sentence's terms with its document's title."""
        sentence = self.index.sentences[sentence_index]
        return terms(sentence.text) | self._titles.get(sentence.doc_id, frozenset())

    def context_terms(self, sentence_index: int) -> Terms:
        """:meth:`own_terms` plus the sentence before, which often names what "it" is."""
        own = self.own_terms(sentence_index)
        sentences = self.index.sentences
        before = sentence_index - 1
        if before >= 0 and sentences[before].doc_id == sentences[sentence_index].doc_id:
            return own | terms(sentences[before].text)
        return own

    def lexical(self, q_terms: Terms, sentence_index: int) -> float:
        """IDF-weighted share of the question's terms that a sentence holds.

        Four fifths count the sentence with its title, one fifth its wider context.
        """
        own = coverage(q_terms, self.own_terms(sentence_index), self.idf)
        context = coverage(q_terms, self.context_terms(sentence_index), self.idf)
        return 0.8 * own + 0.2 * context

    def candidate(self, retrieval: Retrieval, sentence_index: int) -> Candidate:
        """Any sentence's evidence for the retrieved question."""
        dense = float(self.index.vectors[sentence_index] @ retrieval.vector)
        return Candidate(sentence_index, dense, self.lexical(retrieval.terms, sentence_index))

    def retrieve(self, question: str, pool: int = _POOL) -> Retrieval:
        """Sentences ranked for the question, best first."""
        index = self.index
        settings = self.settings
        q_vec: Vectors = self.embedder.encode([question])[0]
        q_terms = terms(question)
        _, dense_ids = index.store.search(q_vec[None, :], pool, self.allowed)
        rankings = [([int(i) for i in dense_ids[0] if i >= 0], settings.dense_weight)]
        if settings.retrieval == "hybrid":
            statistics = self.bm25(question) if self.bm25 else None
            _, lexical_ids = index.lexical.search(question, pool, statistics, self.allowed)
            rankings.append(([int(i) for i in lexical_ids], settings.lexical_weight))
        fused: dict[int, float] = {}
        for ranking, weight in rankings:
            for rank, i in enumerate(ranking):
                fused[i] = fused.get(i, 0.0) + weight / (settings.rrf_k + rank + 1)
        ids = list(fused)
        found = []
        if ids:
            dense = index.vectors[ids] @ q_vec
            found = [
                Candidate(i, float(d), self.lexical(q_terms, i), fused[i])
                for i, d in zip(ids, dense, strict=True)
            ]
            # Fusion picks the pool; evidence orders it (measured better on SQuAD at every k).
            found.sort(key=lambda c: c.evidence, reverse=True)
        return Retrieval(question, q_vec, q_terms, found)

    def sentence_hits(self, candidates: list[Candidate], top_k: int) -> list[SentenceHit]:
        """The best ``top_k`` candidates as wire objects."""
        hits = []
        for c in candidates[:top_k]:
            s = self.index.sentences[c.index]
            collection, doc_id = split_key(s.doc_id)
            hits.append(SentenceHit(doc_id, collection, s.sentence_id, s.start, s.end, s.text,
                                    round(c.evidence, 4)))  # fmt: skip
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
            collection, doc_id = split_key(chunk.doc_id)
            passages.append(Passage(doc_id, collection, chunk.chunk_id, chunk.start, chunk.end,
                                    text, round(c.evidence, 4)))  # fmt: skip
            if len(passages) == top_k:
                break
        return passages
