"""Shards: one corpus held by several index directories, searched as if it were one index.

Scores must not depend on how the corpus is split, so BM25 and evidence use the union's
statistics, as Elasticsearch's ``dfs_query_then_fetch`` does:

1. **statistics**: every shard gives its live sentence count, total length and document
   frequency of each BM25 and evidence term; the front sums them. This round runs once per
   snapshot of a shard (``refresh``), not once per question: every search says which
   snapshot it read, and one read from a snapshot the front has no statistics of yet takes
   them and searches again.
2. **query**: every shard returns its best dense and BM25 sentences, BM25 scored with the
   summed statistics, by document. The best ``pool`` of each ranking over all shards name
   the documents to fetch (those fetched before are kept, as one-document segments).

The fetched documents (text, sentences, BM25 tokens and vectors: nothing is embedded again)
become a small in-memory index, read with the corpus-wide statistics. Ranking it gives
the same sentences, with the same scores, as ranking one index of every shard, because it
holds every sentence either ranking could put in its pool. The answering pipeline then runs
on it unchanged.

A shard that fails or misses the deadline is left out: the answer comes from the others and
is marked ``degraded``, and the shard is named in ``/readyz`` and ``citeqa_shard_up``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import msgspec
import numpy as np

from index import (
    Bm25Statistics,
    Chunk,
    CorpusIndex,
    Document,
    Embedder,
    Segment,
    Sentence,
    Vectors,
    build_index,
    split_key,
    tokenize,
)
from service.answering.ground import Grounder
from service.answering.reading import Reading, Scope, scope_mask, sentences_by_language
from service.answering.retrieve import Retriever, idf_of, term_counts
from service.observe import SHARD_UP
from service.settings import Settings

__all__ = [
    "FetchedDocument",
    "ShardClient",
    "ShardFinds",
    "ShardReader",
    "ShardSummary",
    "ShardWriteError",
    "ShardWritten",
    "Shards",
    "shard_of",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_NEVER = 1 << 62  # a fetched document's segment is searched exactly, never approximately


class ShardWriteError(Exception):
    """A write that some shards did not take."""

    def __init__(self, shards: list[str]) -> None:
        super().__init__(f"shards {', '.join(sorted(shards))} did not take the write")
        self.shards = shards


class CollectionFigures(msgspec.Struct, frozen=True):
    """One collection's term statistics on one shard."""

    sentences: int
    term_counts: dict[str, int]
    bm25: Bm25Statistics


class ShardSummary(msgspec.Struct, frozen=True):
    """What the front needs once per version of a shard's index."""

    name: str
    version: str  # changes whenever the shard serves another snapshot
    sentences: int
    chars: int
    term_counts: dict[str, int]  # sentences that hold each evidence term
    bm25: Bm25Statistics  # over every BM25 term
    languages: dict[str, int]  # sentences per document language
    documents: list[tuple[str, str, int, int]]  # (doc_id, title, chars, sentences)
    # The same figures per collection, for questions whose key reads only some; empty when
    # the shard holds one collection (its figures are the shard's).
    collections: dict[str, CollectionFigures] = msgspec.field(default_factory=dict)


class ShardFinds(msgspec.Struct, frozen=True):
    """One shard's best sentences for a question, as (score, doc_id), best first."""

    dense: list[tuple[float, str]]
    lexical: list[tuple[float, str]]
    version: str = ""  # of the snapshot searched: the documents to fetch are from it


@dataclass(frozen=True)
class FetchedDocument:
    """A document with what it was indexed as: nothing is split, chunked or embedded again."""

    document: Document
    sentences: list[Sentence]
    chunks: list[Chunk]
    tokens: list[list[str]]
    vectors: Vectors  # a row per sentence

    def segment(self) -> Segment:
        """A one-document segment of it, searched exactly."""
        return Segment.build(
            [self.document], self.sentences, self.chunks, self.tokens, self.vectors,
            hnsw_threshold=_NEVER, compress_threshold=_NEVER,
        )  # fmt: skip


class ShardWritten(msgspec.Struct, frozen=True):
    """What a write did on one shard: each upsert's (doc_id, sentences, chunks, replaced)."""

    documents: list[tuple[str, int, int, bool]]
    total_documents: int
    total_sentences: int


class ShardClient(Protocol):
    """One shard as the front reaches it: in process, or through a Ray Serve handle."""

    name: str

    def version(self) -> str:
        """What the shard serves now (its snapshot); the summary changes only with it."""
        ...

    def content_rows(self) -> list[tuple[str, str, int, int]]:
        """Every live sentence as (sentence_id, doc_id, start, end)."""
        ...

    def summary(self) -> ShardSummary:
        """The shard's counts and term statistics."""
        ...

    def search(
        self,
        vector: list[float],
        query: str,
        pool: int,
        statistics: Bm25Statistics,
        scope: Scope | None = None,
    ) -> ShardFinds:
        """Round 2: the shard's best ``pool`` sentences of each ranking, in ``scope``."""
        ...

    def documents(self, doc_ids: list[str]) -> list[FetchedDocument]:
        """The named documents this shard holds."""
        ...

    def write(self, upserts: list[Document], deletes: list[str]) -> ShardWritten:
        """Add or replace ``upserts`` and remove ``deletes``, durably, then serve the result."""
        ...


def shard_of(doc_id: str, shards: int) -> int:
    """The shard a document lives on: a stable hash of its id, the same in every process."""
    return int.from_bytes(hashlib.sha256(doc_id.encode("utf-8")).digest()[:8], "big") % shards


class ShardReader:
    """One index directory's side of the fan-out: its summary, its finds, its documents."""

    def __init__(self, index: CorpusIndex, name: str, version: str = "") -> None:
        self.index = index
        self.name = name
        self.version_name = version

    def version(self) -> str:
        """The snapshot this reader serves."""
        return self.version_name

    def content_rows(self) -> list[tuple[str, str, int, int]]:
        """Every live sentence as (sentence_id, doc_id, start, end)."""
        return [(s.sentence_id, s.doc_id, s.start, s.end) for s in self.index.sentences]

    def summary(self) -> ShardSummary:
        """The counts, evidence-term frequencies and languages of the shard's documents."""
        index = self.index
        return ShardSummary(
            self.name,
            self.version_name,
            len(index.sentences),
            sum(len(d.text) for d in index.documents.values()),
            dict(index.derived_total("term_counts", term_counts)),
            index.lexical.all_statistics(),
            dict(sentences_by_language(index)),
            [(d.doc_id, d.title, len(d.text), len(index.positions_of(d.doc_id)))
             for d in index.documents.values()],
            self._collection_figures(),
        )  # fmt: skip

    def _collection_figures(self) -> dict[str, CollectionFigures]:
        index = self.index
        names = {d.collection for d in index.documents.values()}
        if len(names) < 2:
            return {}
        counts: dict[str, Counter[str]] = {name: Counter() for name in names}
        for d in index.documents.values():
            counts[d.collection].update(index.derived(d.doc_id, "term_counts", term_counts))
        figures = {}
        for name in sorted(names):
            within = scope_mask(index, Scope(frozenset({name})))
            figures[name] = CollectionFigures(
                int(within.sum()), dict(counts[name]), index.lexical.all_statistics(within)
            )
        return figures

    def search(
        self,
        vector: list[float],
        query: str,
        pool: int,
        statistics: Bm25Statistics,
        scope: Scope | None = None,
    ) -> ShardFinds:
        """The best ``pool`` dense sentences and BM25 sentences (scored corpus-wide).

        With a ``scope``, only its sentences are searched, inside the search, as one
        index searches them.
        """
        index = self.index
        if not index.sentences:
            return ShardFinds([], [], self.version_name)
        allowed = None if scope is None else scope_mask(index, scope)
        if allowed is not None and not allowed.any():
            return ShardFinds([], [], self.version_name)
        q = np.asarray(vector, dtype=np.float32)[None, :]
        scores, ids = index.store.search(q, pool, allowed)
        dense = [
            (float(s), index.sentences[int(i)].doc_id)
            for s, i in zip(scores[0], ids[0], strict=True)
            if i >= 0
        ]
        scores, ids = index.lexical.search(query, pool, statistics, allowed)
        lexical = [
            (float(s), index.sentences[int(i)].doc_id) for s, i in zip(scores, ids, strict=True)
        ]
        return ShardFinds(dense, lexical, self.version_name)

    def write(self, upserts: list[Document], deletes: list[str]) -> ShardWritten:
        """A reader of an index in memory writes nothing (``ShardReplica`` writes)."""
        raise PermissionError(f"shard {self.name} is read-only")

    def documents(self, doc_ids: list[str]) -> list[FetchedDocument]:
        """The named documents, with their sentences, tokens and vectors."""
        index = self.index
        fetched = []
        for doc_id in doc_ids:
            if doc_id not in index.documents:
                continue
            positions = index.positions_of(doc_id)
            fetched.append(
                FetchedDocument(
                    index.documents[doc_id],
                    index.sentences_of(doc_id),
                    index.chunks_of(doc_id),
                    index.tokens_of(doc_id),
                    index.vectors[positions],
                )
            )
        return fetched


@dataclass
class _Known:
    """The corpus-wide figures, summed from the shards' summaries."""

    summaries: dict[str, ShardSummary] = field(default_factory=dict)
    sentences: int = 0
    chars: int = 0
    idf: dict[str, float] = field(default_factory=dict)
    languages: tuple[str, ...] = ("en",)
    bm25: Bm25Statistics = field(default_factory=lambda: Bm25Statistics(0, 0, {}))
    # Per set of collections asked: evidence weights and BM25 statistics over them.
    scoped: dict[frozenset[str], tuple[dict[str, float], Bm25Statistics]] = field(
        default_factory=dict
    )

    def within(self, collections: frozenset[str]) -> tuple[dict[str, float], Bm25Statistics]:
        """The figures of ``collections`` over every shard, as one index of them has them."""
        found = self.scoped.get(collections)
        if found is None:
            frequency: Counter[str] = Counter()
            sentences, bm25 = 0, Bm25Statistics(0, 0, {})
            for summary in self.summaries.values():
                parts = summary.collections or {
                    split_key(row[0])[0]: CollectionFigures(
                        summary.sentences, summary.term_counts, summary.bm25)
                    for row in summary.documents[:1]
                }  # fmt: skip
                for name, part in parts.items():
                    if name in collections:
                        frequency.update(part.term_counts)
                        sentences += part.sentences
                        bm25 = bm25.plus(part.bm25)
            found = (idf_of(frequency, sentences), bm25)
            if len(self.scoped) >= 64:
                self.scoped.pop(next(iter(self.scoped)))
            self.scoped[collections] = found
        return found


@dataclass
class _Remembered:
    """The front's embedder, with the question's vector already known."""

    embedder: Embedder
    known: OrderedDict[str, Vectors]

    def remember(self, text: str, vector: Vectors) -> None:
        """Know ``text``'s vector (the last 256 are kept)."""
        self.known[text] = vector
        if len(self.known) > 256:
            self.known.popitem(last=False)

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    @property
    def dim(self) -> int:
        return self.embedder.dim

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> Vectors:
        known = self.known.get(texts[0]) if len(texts) == 1 else None
        if known is not None:
            return known[None, :]
        return self.embedder.encode(texts, progress=progress)


class Shards:
    """The front's view of every shard, read as one corpus: one search round per question."""

    def __init__(
        self,
        clients: Sequence[ShardClient],
        embedder: Embedder,
        settings: Settings,
        *,
        pool: int = 30,
    ) -> None:
        self.clients = {c.name: c for c in clients}
        self.embedder = embedder
        self.settings = settings
        self.pool = pool
        self.missing: frozenset[str] = frozenset()
        self._known = _Known()
        self._threads = ThreadPoolExecutor(max(2, 2 * len(self.clients)), "shard")
        self._empty = build_index([], embedder)
        # Fetched documents as one-document segments, least recently used first, and the
        # values derived from each; a document's entry goes when its shard's snapshot moves.
        self._cache: OrderedDict[tuple[str, str, str], Segment] = OrderedDict()
        self._cache_sentences = 0
        self._cache_lock = threading.Lock()
        self._derived: dict[str, dict[str, Any]] = {}
        self._remembered = _Remembered(embedder, OrderedDict())

    def close(self) -> None:
        """Stop the fan-out threads."""
        self._threads.shutdown(wait=False, cancel_futures=True)

    # -- fan-out --------------------------------------------------------------------------
    def _each(self, call: Callable[[ShardClient], _T], names: Sequence[str] | None = None
              ) -> dict[str, _T]:  # fmt: skip
        """``call`` on every (or the named) shard at once; the ones that fail are left out."""
        names = list(self.clients) if names is None else list(names)
        futures: dict[str, Future[_T]] = {
            n: self._threads.submit(call, self.clients[n]) for n in names
        }
        results, failed = {}, set()
        deadline = time.monotonic() + self.settings.shard_timeout_s  # one for the whole round
        for name, future in futures.items():
            try:
                results[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                failed.add(name)
                log.warning("shard %s missed its %.1f s deadline", name,
                            self.settings.shard_timeout_s)  # fmt: skip
            except Exception as exc:  # a shard down or broken: answer from the others
                failed.add(name)
                log.warning("shard %s failed: %s", name, exc)
        self._mark(set(names) - failed, failed)
        return results

    def _mark(self, up: set[str], down: set[str]) -> None:
        for name in up:
            SHARD_UP.labels(shard=name).set(1)
        for name in down:
            SHARD_UP.labels(shard=name).set(0)
        self.missing = frozenset((self.missing - up) | down)

    def refresh(self) -> None:
        """See which shards answer; take the figures again from those whose snapshot changed.

        The service does this every ``CITEQA_FOLLOW_INTERVAL_S``; a search that read a snapshot
        the front has no figures for does it at once, so the statistics never lag a write.
        """
        versions = self._each(lambda c: c.version())
        known = self._known
        stale = [n for n, v in versions.items()
                 if n not in known.summaries or known.summaries[n].version != v]  # fmt: skip
        changed = self._each(lambda c: c.summary(), stale) if stale else {}
        answered = set(versions) - (set(stale) - set(changed))
        if not changed and answered == set(known.summaries):
            return
        kept = {**{n: s for n, s in known.summaries.items() if n in answered}, **changed}
        frequency: Counter[str] = Counter()
        languages: Counter[str] = Counter()
        for s in kept.values():
            frequency.update(s.term_counts)
            languages.update(s.languages)
        n = sum(s.sentences for s in kept.values())
        bm25 = Bm25Statistics(0, 0, {})
        for s in kept.values():
            bm25 = bm25.plus(s.bm25)
        self._known = _Known(
            kept,
            n,
            sum(s.chars for s in kept.values()),
            idf_of(frequency, n),
            tuple(lang for lang, _ in languages.most_common()) or ("en",),
            bm25,
        )

    @property
    def sentences(self) -> int:
        """Live sentences over the shards that answered last."""
        return self._known.sentences

    @property
    def content_digest(self) -> str:
        """The digest one index of the union would have (``CorpusIndex.content_digest``)."""
        rows = sorted(r for rows in self._each(lambda c: c.content_rows()).values() for r in rows)
        return hashlib.sha256(msgspec.json.encode([list(r) for r in rows])).hexdigest()

    def home_of(self, doc_id: str) -> str:
        """The shard a document is written to: ``shard_of`` its id, over the shards in order."""
        return list(self.clients)[shard_of(doc_id, len(self.clients))]

    def write(self, upserts: list[Document], deletes: list[str]) -> ShardWritten:
        """Route each upsert to its home shard and each delete to where the document lives.

        Each shard's part is durable when this returns. A shard that fails fails the write
        (``ShardWriteError`` names it); the parts other shards took stay written.
        """
        self.refresh()
        lives = {doc_id: name for name, s in self._known.summaries.items()
                 for doc_id, *_ in s.documents}  # fmt: skip
        parts: dict[str, tuple[list[Document], list[str]]] = {}
        for doc in upserts:
            home = self.home_of(doc.doc_id)
            parts.setdefault(home, ([], []))[0].append(doc)
            if lives.get(doc.doc_id, home) != home:  # placed otherwise before: move it
                parts.setdefault(lives[doc.doc_id], ([], []))[1].append(doc.doc_id)
        for doc_id in deletes:
            if doc_id in lives:
                parts.setdefault(lives[doc_id], ([], []))[1].append(doc_id)
        done: dict[str, ShardWritten] = {}
        futures = {n: self._threads.submit(self.clients[n].write, *part)
                   for n, part in parts.items()}  # fmt: skip
        failed = []
        for name, future in futures.items():
            try:
                done[name] = future.result(timeout=self.settings.shard_write_timeout_s)
            except Exception as exc:
                log.warning("write to shard %s failed: %s", name, exc)
                failed.append(name)
        self.refresh()
        if failed:
            raise ShardWriteError(failed)
        return ShardWritten(
            [row for written in done.values() for row in written.documents],
            sum(len(s.documents) for s in self._known.summaries.values()),
            self._known.sentences,
        )

    def holds(self, doc_id: str) -> bool:
        """Whether any shard that answered holds the document."""
        return any(row[0] == doc_id for row in self.listing)

    @property
    def listing(self) -> list[tuple[str, str, int, int]]:
        """Every shard's documents as (doc_id, title, chars, sentences), by shard name."""
        known = self._known.summaries
        return [row for name in sorted(known) for row in known[name].documents]

    def document(self, doc_id: str) -> FetchedDocument | None:
        """One document, from whichever shard holds it."""
        for found in self._each(lambda c: c.documents([doc_id])).values():
            if found:
                return found[0]
        return None

    def bm25_statistics(self, query: str, total: Bm25Statistics | None = None) -> Bm25Statistics:
        """The union's BM25 statistics (or ``total``'s) for the query's terms."""
        total = total or self._known.bm25
        terms = sorted(set(tokenize(query)))
        return Bm25Statistics(total.sentences, total.tokens,
                              {t: total.frequency.get(t, 0) for t in terms})  # fmt: skip

    def fetch(
        self,
        question: str,
        vector: Vectors,
        statistics: Bm25Statistics,
        scope: Scope | None = None,
    ) -> list[Segment]:
        """Round 2: the documents that hold the union's best sentences in scope, as segments.

        Documents fetched before, from the same snapshot of their shard, come from the cache.
        """
        as_list = vector.tolist()
        finds = self._each(lambda c: c.search(as_list, question, self.pool, statistics, scope))
        known = self._known.summaries
        if any(n not in known or f.version != known[n].version for n, f in finds.items()):
            self.refresh()  # a shard moved to another snapshot: take its statistics, again
            statistics = self.bm25_statistics(question, self._figures(scope)[1])
            finds = self._each(lambda c: c.search(as_list, question, self.pool, statistics, scope))
        wanted: dict[str, set[str]] = {}
        for ranking in ("dense", "lexical"):
            hits = [(score, doc_id, name) for name, f in finds.items()
                    for score, doc_id in getattr(f, ranking)]  # fmt: skip
            hits.sort(key=lambda h: -h[0])
            # Sentences tied with the last of the pool come too: which of them one index
            # would keep depends on its layout, so the reading holds them all.
            last = hits[min(self.pool, len(hits)) - 1][0] if hits else 0.0
            for score, doc_id, name in hits:
                if score < last:
                    break
                wanted.setdefault(name, set()).add(doc_id)
        if self._known.chars <= self.settings.whole_corpus_chars:
            # A corpus this small goes whole into the prompt, as one index's would.
            wanted = {n: {doc_id for doc_id, *_ in s.documents
                          if scope is None or scope.holds(doc_id)}
                      for n, s in self._known.summaries.items() if n in finds}  # fmt: skip
        keys = {n: {d: (n, finds[n].version, d) for d in docs} for n, docs in wanted.items()}
        missing = {n: sorted(d for d, key in k.items() if key not in self._cache)
                   for n, k in keys.items()}  # fmt: skip
        missing = {n: docs for n, docs in missing.items() if docs}
        fetched = self._each(lambda c: c.documents(missing[c.name]), list(missing))
        with self._cache_lock:
            for name, documents in fetched.items():
                for f in documents:
                    self._remember((name, finds[name].version, f.document.doc_id), f)
            segments = []
            for key in (k for n in sorted(keys) for k in keys[n].values() if k in self._cache):
                self._cache.move_to_end(key)  # used now: the last to be forgotten
                segments.append(self._cache[key])
        return segments

    def _remember(self, key: tuple[str, str, str], fetched: FetchedDocument) -> None:
        """Keep a fetched document's segment, forgetting the least recently used past the cap."""
        doc_id = key[2]
        for old in [k for k in self._cache if k[2] == doc_id and k != key]:  # a new version
            self._cache_sentences -= len(self._cache.pop(old).sentences)
            self._derived.pop(doc_id, None)
        segment = fetched.segment()
        self._cache[key] = segment
        self._cache_sentences += len(segment.sentences)
        while self._cache_sentences > self.settings.shard_cache_sentences and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            self._cache_sentences -= len(dropped.sentences)
            self._derived.pop(dropped.documents[0].doc_id, None)

    def local_index(self, segments: list[Segment]) -> CorpusIndex:
        """The fetched documents as one index.

        Values derived per document (language, suspects, the LLM's screening verdicts) are
        kept across questions.
        """
        return CorpusIndex(self._empty.manifest, segments, {}, self._derived)

    def _figures(self, scope: Scope | None) -> tuple[dict[str, float], Bm25Statistics | None]:
        """The evidence weights and BM25 statistics a question in ``scope`` is scored with.

        A scope of some collections takes them from those collections alone, as one index
        does (``Reading.scoped``); otherwise, the union's.
        """
        if scope is None or scope.collections is None:
            return self._known.idf, None
        return self._known.within(scope.collections)

    def read(self, question: str, scope: Scope | None = None) -> Reading:
        """A reading of the documents that hold the union's best sentences for ``question``.

        With a ``scope``, each shard searches only its documents in scope.
        """
        if not self._known.summaries:
            self.refresh()
        vector = self.embedder.encode([question])[0]
        statistics = self.bm25_statistics(question, self._figures(scope)[1])
        index = self.local_index(self.fetch(question, vector, statistics, scope))
        embedder = self._remembered  # one object: what is cached per embedder stays cached
        embedder.remember(question, vector)

        idf, total = self._figures(scope)
        retriever = Retriever(index, embedder, self.settings, idf=idf,
                              bm25=lambda q: self.bm25_statistics(q, total))  # fmt: skip
        known = self._known
        return Reading(index, retriever, Grounder(retriever, self.settings), known.chars,
                       known.languages, self.missing, whole=False)  # fmt: skip
