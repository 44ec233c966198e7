"""A reading: one version of the index with what questions over it need.

One index's reading is built once per version (``Reading.of``); over shards, each question
gets a reading of the documents its search fetched (``service/answering/shards.py``).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass

import numpy as np

from index import Allowed, CorpusIndex, Embedder, Sentence, page_of
from service.answering.compose import Composition
from service.answering.ground import Grounder
from service.answering.language import language_of
from service.answering.retrieve import Retriever
from service.schemas import Filter
from service.settings import Settings

__all__ = ["Reading", "language_of_sentences", "sentences_by_language"]


def language_of_sentences(sentences: list[Sentence]) -> str:
    """The language of a document, told from its first sentences."""
    return language_of(" ".join(s.text for s in sentences[:20]))


def sentences_by_language(index: CorpusIndex) -> Counter[str]:
    """How many of the index's sentences are in each language (by their document's)."""
    counts: Counter[str] = Counter()
    for doc_id in index.documents:
        language = index.derived(doc_id, "language", language_of_sentences)
        counts[language] += len(index.positions_of(doc_id))
    return counts


def scope_mask(index: CorpusIndex, scope: Filter) -> Allowed:
    """The sentences of ``index``'s documents in ``scope``, as a mask over its positions.

    In scope: named by ``doc_ids`` (every document, if None), with metadata that holds, for
    every key, one of its values.
    """
    allowed = np.zeros(len(index.sentences), dtype=bool)
    metadata = scope.values()
    for doc_id in index.documents if scope.doc_ids is None else scope.doc_ids:
        doc = index.documents.get(doc_id)
        if doc is not None and all(doc.metadata.get(k) in v for k, v in metadata.items()):
            allowed[index.positions_of(doc_id)] = True
    return allowed


@dataclass(frozen=True)
class Reading:
    """One version of the index with what questions over it need, built once per version."""

    index: CorpusIndex
    retriever: Retriever
    grounder: Grounder
    corpus_chars: int
    languages: tuple[str, ...]  # of the documents, the one most sentences are in first
    missing: frozenset[str] = frozenset()  # shards that did not answer: the reading is partial
    allowed: Allowed | None = None  # the sentences a scoped question may find and cite

    def scoped(self, scope: Filter) -> Reading:
        """The reading in which questions find and cite only the sentences of ``scope``."""
        allowed = scope_mask(self.index, scope)
        return dataclasses.replace(self, retriever=self.retriever.scoped(allowed), allowed=allowed)

    @classmethod
    def of(cls, index: CorpusIndex, embedder: Embedder, settings: Settings) -> Reading:
        """The reading of ``index``: term statistics, untrusted sentences, its language."""
        retriever = Retriever(index, embedder, settings)
        by_language = sentences_by_language(index)
        languages = tuple(language for language, _ in by_language.most_common()) or ("en",)
        return cls(index, retriever, Grounder(retriever, settings),
                   sum(len(d.text) for d in index.documents.values()), languages)  # fmt: skip

    @property
    def language(self) -> str:
        """The language most of the corpus is written in."""
        return self.languages[0]

    def language_of_document(self, doc_id: str) -> str:
        """The language a document is written in."""
        return str(self.index.derived(doc_id, "language", language_of_sentences))

    @property
    def sentences(self) -> list[Sentence]:
        """The index's sentences, by position."""
        return self.index.sentences

    def page_of(self, sentence: Sentence) -> int | None:
        """The 1-based page a sentence starts on, or None if its document has no pages."""
        doc = self.index.documents.get(sentence.doc_id)
        return None if doc is None else page_of(doc.pages, sentence.start)

    def composition(self) -> Composition:
        """An empty answer over this reading's sentences, citing each with its page."""
        return Composition(self.sentences, self.page_of)
