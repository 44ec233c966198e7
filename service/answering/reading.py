"""A reading: one version of the index with what questions over it need.

One index's reading is built once per version (``Reading.of``); over shards, each question
gets a reading of the documents its search fetched (``service/answering/shards.py``).
"""

from __future__ import annotations

import copy
import dataclasses
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from index import Allowed, CorpusIndex, Embedder, Sentence, document_key, page_of, split_key
from service.answering.compose import Composition
from service.answering.ground import Grounder
from service.answering.language import language_of
from service.answering.retrieve import Retriever, idf_of, term_counts
from service.schemas import Filter
from service.settings import Settings

__all__ = ["Reading", "Scope", "language_of_sentences", "scope_mask", "sentences_by_language"]


def language_of_sentences(sentences: list[Sentence]) -> str:
    """The language of a document, told from its first sentences."""
    return language_of(" ".join(s.text for s in sentences[:20]))


def sentences_by_language(index: CorpusIndex, allowed: Allowed | None = None) -> Counter[str]:
    """How many of the index's sentences (of ``allowed`` ones) are in each language."""
    counts: Counter[str] = Counter()
    for doc_id in index.documents:
        positions = index.positions_of(doc_id)
        if allowed is not None and not (positions and allowed[positions[0]]):
            continue  # a scope holds a document whole or not at all
        language = index.derived(doc_id, "language", language_of_sentences)
        counts[language] += len(positions)
    return counts


@dataclass(frozen=True)
class Scope:
    """What a question may see: the documents of some collections that a filter keeps.

    ``collections`` None: of every one. Built from the caller's key and the request.
    """

    collections: frozenset[str] | None = None
    filter: Filter | None = None

    def holds(self, key: str) -> bool:
        """Whether the document under index key ``key`` is in the scope, metadata aside."""
        collection, doc_id = split_key(key)
        if self.collections is not None and collection not in self.collections:
            return False
        return self.filter is None or self.filter.doc_ids is None or doc_id in self.filter.doc_ids

    @property
    def label(self) -> str:
        """The collections, as metrics and logs name them: "*" for every one."""
        return "*" if self.collections is None else ",".join(sorted(self.collections)) or "-"


def scope_mask(index: CorpusIndex, scope: Scope) -> Allowed:
    """The sentences of ``index``'s documents in ``scope``, as a mask over its positions.

    In scope: of the scope's collections, named by its filter's ``doc_ids`` (every document,
    if None), with metadata that holds, for every key, one of its values.
    """
    allowed = np.zeros(len(index.sentences), dtype=bool)
    named = scope.filter.doc_ids if scope.filter else None
    metadata = scope.filter.values() if scope.filter else {}
    if named is not None and scope.collections is not None:  # look the few keys up
        keys: Iterable[str] = [document_key(c, n) for c in scope.collections for n in named]
    else:
        keys = index.documents
    for key in keys:
        doc = index.documents.get(key)
        if (doc is not None and scope.holds(key)
                and all(doc.metadata.get(k) in v for k, v in metadata.items())):  # fmt: skip
            allowed[index.positions_of(key)] = True
    return allowed


@dataclass(frozen=True)
class _Corpus:
    """Some collections taken as a corpus: their sentences, term weights, size, languages."""

    sentences: Allowed
    idf: dict[str, float]
    chars: int
    languages: tuple[str, ...]


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
    whole: bool = True  # False: documents fetched from shards, a part of the corpus
    # Per set of collections asked: what they hold (``_corpus_of``).
    corpora: dict[frozenset[str], _Corpus] = field(default_factory=dict, compare=False, repr=False)

    def scoped(self, scope: Scope) -> Reading:
        """The reading in which questions find and cite only the sentences of ``scope``.

        Its size and languages are the scope's own, as if it were the corpus: nothing
        outside a scope changes how a question in it is answered (whether the corpus goes
        whole into the prompt, into which language a question is translated). A reading
        of documents fetched from shards holds only some of the scope, so keeps its size.
        """
        corpus = None
        if scope.collections is not None and self.whole:
            corpus = self._corpus_of(scope.collections)
        if corpus is not None and scope.filter is None:  # the collections are the scope
            allowed, chars, languages = corpus.sentences, corpus.chars, corpus.languages
        else:
            allowed = scope_mask(self.index, scope)
            chars, languages = self._size_of(allowed)
            if not self.whole:  # fetched documents are only some of the scope's
                chars = self.corpus_chars
        retriever = self.retriever.scoped(allowed)
        if corpus is not None:
            retriever = retriever.within(corpus.sentences, corpus.idf)
        grounder = copy.copy(self.grounder)
        grounder.retriever = retriever
        return dataclasses.replace(self, retriever=retriever, grounder=grounder, allowed=allowed,
                                   corpus_chars=chars,
                                   languages=languages or self.languages)  # fmt: skip

    def _size_of(self, allowed: Allowed) -> tuple[int, tuple[str, ...]]:
        """The characters of the documents ``allowed`` holds, and their languages."""
        index = self.index
        chars = sum(len(d.text) for k, d in index.documents.items()
                    if allowed[index.positions_of(k)[:1]].any())  # fmt: skip
        by_language = sentences_by_language(index, allowed)
        return chars, tuple(language for language, _ in by_language.most_common())

    def _corpus_of(self, collections: frozenset[str]) -> _Corpus:
        """What the collections hold, taken as a key's whole corpus.

        Kept for the last 64 sets of collections asked of this version of the index.
        """
        found = self.corpora.get(collections)
        if found is None:
            sentences = scope_mask(self.index, Scope(collections))
            sentences.flags.writeable = False  # kept: stores keep their search of it too
            frequency: Counter[str] = Counter()
            for key in self.index.documents:
                if split_key(key)[0] in collections:
                    frequency.update(self.index.derived(key, "term_counts", term_counts))
            idf = idf_of(frequency, int(sentences.sum()))
            found = _Corpus(sentences, idf, *self._size_of(sentences))
            if len(self.corpora) >= 64:
                self.corpora.pop(next(iter(self.corpora)))
            self.corpora[collections] = found
        return found

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
