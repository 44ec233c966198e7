"""The corpus index as readers see it: segments and tombstones, seen as one corpus.

Built and changed by ``index/writer.py``, saved and loaded by ``index/snapshots.py``.
A reader holds one ``CorpusIndex`` for as long as it likes: it never changes under it.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import msgspec
import numpy as np

from index.chunk import Chunk
from index.documents import Document
from index.lexical import tokenize
from index.search import Bm25, FaissStore, FanOutStore, StackedVectors, VectorStore
from index.segment import Segment
from index.split import SPLITTER, Sentence

__all__ = ["FORMAT_VERSION", "CorpusIndex", "Manifest", "SegmentEntry"]

_T = TypeVar("_T")

FORMAT_VERSION = 3


class SegmentEntry(msgspec.Struct, frozen=True):
    """One segment of a snapshot: its size, its tombstones, and the checksum of each file."""

    name: str
    documents: int
    sentences: int
    deleted: list[str] = msgspec.field(default_factory=list)  # doc_ids tombstoned in it
    files: dict[str, str] = msgspec.field(default_factory=dict)


class Manifest(msgspec.Struct, frozen=True):
    """What a snapshot holds, what built it, and its segments."""

    format_version: int
    model_id: str
    dim: int
    corpus_checksum: str
    seed_checksum: str  # of the configured corpus this index was last seeded from
    documents: int  # live ones
    sentences: int
    chunks: int
    vector_index: str  # how the segments are searched: "flat", "hnsw", "ivfpq" or a mix
    built_at: float
    segmenter: str = SPLITTER  # what split the sentences (index/split.py); named so in format 3
    segments: list[SegmentEntry] = msgspec.field(default_factory=list)


@dataclass
class CorpusIndex:
    """Segments and tombstones, seen as one corpus.

    ``documents``, ``sentences``, ``chunks`` and ``vectors`` hold the live rows of every
    segment in segment order; a sentence's position in ``sentences`` is what ``store``
    (FAISS, fanned out over the segments) and ``lexical`` (BM25 with corpus-wide
    statistics) return.
    """

    manifest: Manifest
    segments: list[Segment]
    deleted: dict[str, frozenset[str]] = field(default_factory=dict)  # segment -> doc_ids
    # Values derived from one document's sentences (BM25 tokens, term counts, ...), kept
    # across writes that leave the document unchanged.
    derived_values: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    # What :meth:`derived_total` needs from the index this one was written from: its
    # totals, and the derived values of the documents the write removed and added.
    since: tuple[dict[str, Counter[str]], dict[str, dict[str, Any]], frozenset[str]] | None = field(
        default=None, repr=False
    )
    # Per-document totals already summed (a merge hands its index's over: same documents).
    totals: dict[str, Counter[str]] = field(default_factory=dict, repr=False)
    documents: dict[str, Document] = field(init=False, repr=False)
    sentences: list[Sentence] = field(init=False, repr=False)
    chunks: list[Chunk] = field(init=False, repr=False)
    vectors: StackedVectors = field(init=False, repr=False)
    store: VectorStore = field(init=False, repr=False)
    lexical: Bm25 = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.documents, self.sentences, self.chunks = {}, [], []
        self.home: dict[str, str] = {}  # doc_id -> the segment that holds it live
        self._doc_sentences: dict[str, list[int]] = {}
        self._doc_chunks: dict[str, list[int]] = {}
        live_rows, stores, parts = [], [], []
        for seg in self.segments:
            gone = self.deleted.get(seg.name, frozenset())
            positions = np.full(len(seg.sentences), -1, dtype=np.int64)
            for doc in seg.documents:  # a document's rows are adjacent: copied a range at a time
                if doc.doc_id in gone:
                    continue
                self.documents[doc.doc_id] = doc
                self.home[doc.doc_id] = seg.name
                first, end = seg.sentence_rows.get(doc.doc_id, (0, 0))
                at = len(self.sentences)
                self.sentences.extend(seg.sentences[first:end])
                self._doc_sentences[doc.doc_id] = list(range(at, at + end - first))
                positions[first:end] = np.arange(at, at + end - first)
                first, end = seg.chunk_rows.get(doc.doc_id, (0, 0))
                at = len(self.chunks)
                self.chunks.extend(seg.chunks[first:end])
                self._doc_chunks[doc.doc_id] = list(range(at, at + end - first))
            live_rows.append(np.nonzero(positions >= 0)[0] if gone else np.arange(len(positions)))
            stores.append(FaissStore(seg.dense, positions, seg.vectors))
            parts.append((seg.postings, positions))
        self.vectors = StackedVectors([seg.vectors for seg in self.segments], live_rows,
                                      self.manifest.dim)  # fmt: skip
        self.store = FanOutStore(stores)
        self.lexical = Bm25(parts, len(self.sentences))

    def sentences_of(self, doc_id: str) -> list[Sentence]:
        """Sentences of one document, in order."""
        return [self.sentences[i] for i in self._doc_sentences.get(doc_id, [])]

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        """Chunks of one document, in order."""
        return [self.chunks[i] for i in self._doc_chunks.get(doc_id, [])]

    def positions_of(self, doc_id: str) -> list[int]:
        """Positions (in ``sentences``) of one document's sentences, in order."""
        return self._doc_sentences.get(doc_id, [])

    def tokens_of(self, doc_id: str) -> list[list[str]]:
        """BM25 tokens of one document's sentences, in order (kept as a derived value)."""
        return self.derived(doc_id, "tokens", _tokens)

    def derived(self, doc_id: str, name: str, compute: Callable[[list[Sentence]], _T]) -> _T:
        """``compute`` of one document's sentences, computed once per document.

        The value is kept across writes that leave the document unchanged, so it must not
        depend on positions in the index.
        """
        cache = self.derived_values.setdefault(doc_id, {})
        if name not in cache:
            cache[name] = compute(self.sentences_of(doc_id))
        return cast(_T, cache[name])

    def derived_if_known(self, doc_id: str, name: str) -> Any | None:
        """What :meth:`derived` holds as ``name`` for the document; None if nothing yet."""
        return self.derived_values.get(doc_id, {}).get(name)

    def derived_total(
        self, name: str, compute: Callable[[list[Sentence]], Counter[str]]
    ) -> Counter[str]:
        """The sum over live documents of a per-document :meth:`derived` count.

        After a write it is the previous index's total, less the removed documents'
        counts, plus the added ones': a write costs its own documents.
        """
        if name not in self.totals:
            totals, removed, added = self.since or ({}, {}, frozenset())
            if name in totals and all(name in values for values in removed.values()):
                total = totals[name].copy()
                for values in removed.values():
                    total.subtract(values[name])
                for doc_id in added:
                    total.update(self.derived(doc_id, name, compute))
                self.totals[name] = +total  # drops the terms no document holds any more
            else:
                total = Counter()
                for doc_id in self.documents:
                    total.update(self.derived(doc_id, name, compute))
                self.totals[name] = total
        return self.totals[name]

    def chunk_of(self, sentence_index: int) -> Chunk:
        """The first chunk that holds the sentence."""
        sentence = self.sentences[sentence_index]
        pos = self._doc_sentences[sentence.doc_id].index(sentence_index)
        for i in self._doc_chunks[sentence.doc_id]:
            chunk = self.chunks[i]
            if chunk.first <= pos <= chunk.last:
                return chunk
        raise KeyError(sentence.sentence_id)  # pragma: no cover - chunks cover every sentence

    @property
    def tombstones(self) -> int:
        """Sentences still stored in segments but deleted or replaced."""
        return sum(len(s.sentences) for s in self.segments) - len(self.sentences)

    @property
    def content_digest(self) -> str:
        """sha256 over the sorted (sentence_id, doc_id, start, end) rows of the sentences.

        Two indexes of the same documents, however they were built, have the same digest.
        """
        rows = sorted((s.sentence_id, s.doc_id, s.start, s.end) for s in self.sentences)
        return hashlib.sha256(msgspec.json.encode(rows)).hexdigest()


def _tokens(sentences: list[Sentence]) -> list[list[str]]:
    return [tokenize(s.text) for s in sentences]
