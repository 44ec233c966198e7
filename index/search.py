"""Search: the vector-store seam, FAISS, the fan-out over segments, and BM25.

Dense searches run over every segment and merge their results. BM25 takes its statistics
(live sentence count, average length, document frequencies) over the live sentences of
all segments, so a score does not depend on how the corpus happens to be cut.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import faiss
import msgspec
import numpy as np
import numpy.typing as npt
import scipy.sparse

from index.lexical import tokenize

__all__ = [
    "COMPRESS_THRESHOLD",
    "HNSW_THRESHOLD",
    "Allowed",
    "Bm25",
    "Bm25Statistics",
    "FaissStore",
    "FanOutStore",
    "Postings",
    "StackedVectors",
    "VectorStore",
]

Positions = npt.NDArray[np.int64]


# A mask over corpus positions: the sentences a scoped question may find.
Allowed = npt.NDArray[np.bool_]


class VectorStore(Protocol):
    """Nearest neighbours by inner product over unit vectors."""

    @property
    def kind(self) -> str:
        """The FAISS index kind, as ``/readyz`` reports it."""
        ...

    def __len__(self) -> int: ...

    def search(
        self, queries: npt.NDArray[np.float32], k: int, allowed: Allowed | None = None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Scores and corpus positions of the ``k`` nearest rows to each query.

        With ``allowed`` (a mask over corpus positions), only those rows are searched.
        """
        ...


HNSW_THRESHOLD = 20_000
HNSW_M = 32
HNSW_EF_SEARCH = 128
# Compressed codes: IVF lists over product-quantised vectors (PQ_BYTES per sentence in
# memory), each search re-ranked exactly from the full vectors, which stay on disk (mapped).
COMPRESS_THRESHOLD = 1_000_000
PQ_BYTES = 48
IVF_NPROBE = 32
RERANK = 100  # codes shortlisted per search before the exact re-ranking
# A scope of at most this many sentences in a segment is searched exactly, from a contiguous
# copy of its full vectors (0.2 ms for 10,000 at 384 dimensions; benchmarks/filtered_search.py):
# graph walks and IVF probes lose recall when a selective filter leaves few of the rows they
# visit. A larger scope of compressed codes gets an IVF index of its own codes; of a graph,
# the graph walked with an ID selector.
EXACT_SCOPE = 20_000
SCOPE_VIEWS = 8  # scopes (read-only masks) whose search structures a store keeps


def _best(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.int64]:
    """Per row, the columns of the ``k`` highest scores, highest first."""
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1, kind="stable")
    return np.take_along_axis(top, order, 1)


def _slot_codes(ivf: Any) -> npt.NDArray[np.uint8]:
    """Each slot's list number then PQ code, as ``sa_encode`` lays them, read off its lists."""
    coarse = int(ivf.coarse_code_size())
    codes = np.empty((int(ivf.ntotal), coarse + int(ivf.code_size)), dtype=np.uint8)
    lists = ivf.invlists
    for number in range(int(ivf.nlist)):
        size = int(lists.list_size(number))
        if not size:
            continue
        ids = faiss.rev_swig_ptr(lists.get_ids(number), size)
        listed = faiss.rev_swig_ptr(lists.get_codes(number), size * ivf.code_size)
        codes[ids, coarse:] = listed.reshape(size, -1)
        codes[ids, :coarse] = np.frombuffer(number.to_bytes(coarse, "little"), dtype=np.uint8)
    return codes


@dataclass(frozen=True, eq=False)
class _ScopeView:
    """What a scoped search needs, built once per scope.

    ``slots`` in scope, and one of: their full ``vectors`` (searched exactly), an ``ivf``
    index of their codes alone, or ``bits``, the bitmap FAISS filters a walk with.
    """

    slots: npt.NDArray[np.int64]
    share: float  # of the store's slots
    vectors: npt.NDArray[np.float32] | None = None
    ivf: Any = None
    bits: npt.NDArray[np.uint8] | None = None


class FaissStore:
    """Inner-product search over unit vectors, by size: exact, HNSW, or compressed codes.

    Exact (flat) for small corpora, HNSW above ``hnsw_threshold``, and above
    ``compress_threshold`` IVF lists of product-quantised codes whose shortlist is
    re-ranked exactly from the full vectors.

    FAISS ids are slots. ``positions`` maps each slot to a sentence position, -1 for the
    slots of removed sentences (tombstones), which searches skip: a segment's index stays
    as it was written while the corpus around it changes.
    """

    def __init__(
        self,
        index: faiss.Index,
        positions: npt.NDArray[np.int64] | None = None,
        vectors: npt.NDArray[np.float32] | None = None,
    ) -> None:
        self._index = index
        # positions[slot] is the sentence position a slot holds, -1 when dead; None: slot ==
        # position for every slot.
        self._positions = positions
        self._live = int(index.ntotal) if positions is None else int((positions >= 0).sum())
        self._vectors = vectors  # by slot, for re-ranking compressed codes
        self._views: dict[int, tuple[weakref.ref[Allowed], _ScopeView]] = {}
        self._codes: npt.NDArray[np.uint8] | None = None  # by slot: list number and PQ code
        self._lock = threading.Lock()  # searches run in worker threads
        if self.kind == "ivfpq" and vectors is None:
            raise ValueError("a compressed index needs its full vectors to re-rank")

    @classmethod
    def from_vectors(
        cls,
        vectors: npt.NDArray[np.float32],
        *,
        hnsw_threshold: int = HNSW_THRESHOLD,
        compress_threshold: int = COMPRESS_THRESHOLD,
    ) -> FaissStore:
        """Index ``vectors`` (rows are unit vectors); row i gets id i."""
        n, dim = vectors.shape
        index: faiss.Index
        if n >= compress_threshold and n >= 256:
            lists = max(1, min(int(4 * n**0.5), n // 39))  # FAISS wants 39 points per list
            # Bytes per code: a divisor of dim, each byte coding 4 or more dimensions; "np"
            # skips polysemous training, which takes minutes and serves Hamming search only.
            codes = max(m for m in range(1, min(PQ_BYTES, dim // 4) + 1) if dim % m == 0)
            spec = f"IVF{lists},PQ{codes}np"
            index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
            index.train(vectors)
        elif n >= hnsw_threshold:
            index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
        else:
            index = faiss.IndexFlatIP(dim)
        if n:
            index.add(vectors)
        return cls(index, vectors=vectors)

    @property
    def index(self) -> faiss.Index:
        """The FAISS index itself; its ids are slots."""
        return self._index

    @property
    def kind(self) -> str:
        """``flat`` (exact), ``hnsw`` (approximate) or ``ivfpq`` (compressed, re-ranked)."""
        if isinstance(self._index, faiss.IndexHNSWFlat):
            return "hnsw"
        return "ivfpq" if isinstance(self._index, faiss.IndexIVFPQ) else "flat"

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self._index.d)

    @property
    def dead(self) -> int:
        """Slots whose sentence was removed (tombstones)."""
        return int(self._index.ntotal) - self._live

    def __len__(self) -> int:
        return self._live

    def _search(
        self,
        index: faiss.Index,
        queries: npt.NDArray[np.float32],
        k: int,
        bits: npt.NDArray[np.uint8] | None = None,
        share: float = 1.0,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Search ``index`` (this store's or a scope's), re-ranking compressed codes exactly.

        ``bits``: the slots a walk may return, filtered inside the search (FAISS skips the
        other ids as it walks), so a scope still gets its k best, not what is left of the
        corpus's k best. ``share``: the part of this store's slots the search may find.
        """
        kind = self.kind
        selector = None
        if bits is not None:  # a bit test per visited row, where a batch of ids is a hash lookup
            selector = faiss.IDSelectorBitmap(int(self._index.ntotal), faiss.swig_ptr(bits))
        parameters: Any = {  # built with keywords, so that they hold their selector
            "hnsw": faiss.SearchParametersHNSW,  # type: ignore[attr-defined]
            "ivfpq": faiss.SearchParametersIVF,
            "flat": faiss.SearchParameters,
        }[kind]
        breadth: dict[str, int] = {}
        if kind == "hnsw":
            breadth = {"efSearch": max(HNSW_EF_SEARCH, k)}
        elif kind == "ivfpq":
            # A scope of a tenth of the rows leaves a tenth of each list: probe ten times as
            # many lists, so that as many rows in scope are scored as without a scope.
            lists = int(faiss.extract_index_ivf(self._index).nlist)
            breadth = {"nprobe": min(lists, math.ceil(IVF_NPROBE / max(share, 1e-3)))}
        params = None if selector is None and not breadth else parameters(sel=selector, **breadth)
        if self._vectors is None or kind != "ivfpq":
            scores, ids = index.search(queries, k, params=params)
            return scores, ids
        _, shortlist = index.search(queries, max(k, RERANK), params=params)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        for row, slots in enumerate(shortlist):
            slots = slots[slots >= 0]
            exact = np.asarray(self._vectors[slots]) @ queries[row]
            best = np.argsort(-exact, kind="stable")[:k]
            scores[row, : len(best)], ids[row, : len(best)] = exact[best], slots[best]
        return scores, ids

    def _allowed_slots(self, allowed: Allowed) -> npt.NDArray[np.bool_]:
        """A mask over slots: the live ones whose sentence position ``allowed`` holds."""
        total = int(self._index.ntotal)
        if self._positions is None:
            return allowed[:total]
        live = self._positions >= 0
        ok = np.zeros(total, dtype=bool)
        ok[live] = allowed[self._positions[live]]
        return ok

    def _view(self, allowed: Allowed) -> _ScopeView:
        """The scope's view, built at its first search.

        Kept for a read-only mask (its holder's word that it will not change), among the
        last ``SCOPE_VIEWS`` such masks searched.
        """
        if allowed.flags.writeable:
            return self._build_view(allowed)
        with self._lock:
            found = self._views.pop(id(allowed), None)
            if found is not None and found[0]() is allowed:
                self._views[id(allowed)] = found  # the most recently searched, kept longest
                return found[1]
            view = self._build_view(allowed)
            views = {key: kept for key, kept in self._views.items() if kept[0]() is not None}
            while len(views) >= SCOPE_VIEWS:
                views.pop(next(iter(views)))
            views[id(allowed)] = (weakref.ref(allowed), view)
            self._views = views
            return view

    def _build_view(self, allowed: Allowed) -> _ScopeView:
        ok = self._allowed_slots(allowed)
        slots = np.nonzero(ok)[0].astype(np.int64)  # only live slots: no tombstone comes back
        share = slots.size / max(ok.size, 1)
        if slots.size <= EXACT_SCOPE:
            if self._vectors is not None:
                vectors = np.ascontiguousarray(self._vectors[slots], dtype=np.float32)
            else:
                vectors = self._index.reconstruct_batch(slots)
            return _ScopeView(slots, share, vectors=vectors)
        if self.kind == "ivfpq":
            return _ScopeView(slots, share, ivf=self._scope_ivf(slots))
        return _ScopeView(slots, share, bits=np.packbits(ok, bitorder="little"))

    def _scope_ivf(self, slots: npt.NDArray[np.int64]) -> Any:
        """An IVF index of the codes of ``slots`` alone: the same lists and codebooks.

        Probing it scans only rows in scope, where a selector over the whole index tests
        every row of every list probed (a scope of 10 % probes ten times as many lists).
        """
        ivf: Any = self._index
        if self._codes is None:
            self._codes = _slot_codes(ivf)
        scope = faiss.IndexIVFPQ(ivf.quantizer, ivf.d, ivf.nlist, ivf.pq.M, ivf.pq.nbits,
                                 ivf.metric_type)  # fmt: skip
        scope.pq, scope.by_residual, scope.is_trained = ivf.pq, ivf.by_residual, True
        scope.add_sa_codes(self._codes[slots], slots)
        return scope

    def search(
        self, queries: npt.NDArray[np.float32], k: int, allowed: Allowed | None = None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Top ``k`` sentence positions and scores per query; missing ones are -1."""
        if allowed is not None:
            view = self._view(allowed)
            if not view.slots.size:
                return (np.full((len(queries), 1), -np.inf, dtype=np.float32),
                        np.full((len(queries), 1), -1, dtype=np.int64))  # fmt: skip
            k = max(1, min(k, int(view.slots.size)))
            if view.vectors is not None:
                exact = queries @ view.vectors.T
                best = _best(exact, k)
                scores, found = np.take_along_axis(exact, best, 1), view.slots[best]
            else:
                index = self._index if view.ivf is None else view.ivf
                scores, found = self._search(index, queries, k, view.bits, view.share)
            if self._positions is None:
                return scores, found
            return scores, np.where(found >= 0, self._positions[np.maximum(found, 0)], -1)
        k = max(1, min(k, len(self)))
        if self._positions is None:
            return self._search(self._index, queries, k)
        total = int(self._index.ntotal)
        wide = min(total, 2 * k + 16)  # dead slots are rarely near the top; widen if they are
        while True:
            scores, slots = self._search(self._index, queries, wide)
            positions = np.where(slots >= 0, self._positions[np.maximum(slots, 0)], -1)
            if wide >= total or bool(((positions >= 0).sum(axis=1) >= k).all()):
                break
            wide = min(total, k + self.dead)
        out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        out_ids = np.full((len(queries), k), -1, dtype=np.int64)
        for row in range(len(queries)):
            alive = np.nonzero(positions[row] >= 0)[0][:k]
            out_scores[row, : len(alive)] = scores[row, alive]
            out_ids[row, : len(alive)] = positions[row, alive]
        return out_scores, out_ids


@dataclass(frozen=True, eq=False)
class Postings:
    """A segment's term frequencies: rows are its sentences, columns its terms."""

    terms: dict[str, int]
    counts: scipy.sparse.csc_array  # float32 term frequency
    lengths: npt.NDArray[np.float32]  # tokens per sentence

    @classmethod
    def from_tokens(cls, tokens: Sequence[list[str]]) -> Postings:
        """Postings of sentences given as their :func:`tokenize` tokens."""
        terms: dict[str, int] = {}
        rows, cols = [], []
        for row, sentence in enumerate(tokens):
            for token in sentence:
                rows.append(row)
                cols.append(terms.setdefault(token, len(terms)))
        data = np.ones(len(rows), dtype=np.float32)
        counts = scipy.sparse.csc_array(
            (data, (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))),
            shape=(len(tokens), len(terms)),
        )
        counts.sum_duplicates()
        lengths = np.asarray([len(t) for t in tokens], dtype=np.float32)
        return cls(terms, counts, lengths)

    def column(self, term: str) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
        """The rows that hold ``term`` and how often each holds it."""
        col = self.terms.get(term)
        if col is None:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)
        lo, hi = self.counts.indptr[col], self.counts.indptr[col + 1]
        return self.counts.indices[lo:hi], self.counts.data[lo:hi]


class Bm25Statistics(msgspec.Struct, frozen=True):
    """What BM25 needs to know about a corpus for one query's terms.

    Statistics of several shards add up (:meth:`plus`) to those of their union, so a query
    scored with the sum gets the scores one index of every shard would give: Elasticsearch's
    ``dfs_query_then_fetch``.
    """

    sentences: int  # live sentences
    tokens: int  # their total length in tokens
    frequency: dict[str, int]  # sentences that hold each term

    def plus(self, other: Bm25Statistics) -> Bm25Statistics:
        """The statistics of both corpora together."""
        frequency = dict(self.frequency)
        for term, n in other.frequency.items():
            frequency[term] = frequency.get(term, 0) + n
        return Bm25Statistics(self.sentences + other.sentences, self.tokens + other.tokens,
                              frequency)  # fmt: skip


class Bm25:
    """BM25 over the live sentences of every segment, with corpus-wide statistics.

    Lucene's formula with bm25s's defaults (k1 1.5, b 0.75). bm25s bakes one index's own
    statistics into the scores it stores, so it cannot score segments as one corpus; the
    postings here keep raw counts and the statistics are taken at search time, from these
    segments or from whatever :class:`Bm25Statistics` the caller gives (those of all shards).
    """

    K1 = 1.5
    B = 0.75

    def __init__(self, parts: Sequence[tuple[Postings, Positions]], size: int) -> None:
        self._parts = parts  # each segment's postings and the global position of each row
        self._size = size
        self._lengths = np.zeros(size, dtype=np.float32)
        for postings, positions in parts:
            live = positions >= 0
            self._lengths[positions[live]] = postings.lengths[live]
        self._tokens = int(self._lengths.sum())

    def _postings(self, term: str) -> tuple[Positions, npt.NDArray[np.float32]]:
        """The live sentences that hold ``term``, and how often each holds it."""
        found, counts = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.float32)]
        for postings, positions in self._parts:
            rows, tf = postings.column(term)
            where = positions[rows]
            live = where >= 0
            found.append(where[live])
            counts.append(tf[live])
        return np.concatenate(found), np.concatenate(counts)

    def all_statistics(self, within: Allowed | None = None) -> Bm25Statistics:
        """The statistics of these segments (of their ``within`` sentences) for every term."""
        frequency: dict[str, int] = {}
        for postings, positions in self._parts:
            live = positions >= 0
            if within is not None:
                live &= within[np.maximum(positions, 0)]
            live = live.astype(np.int64)
            held = np.concatenate([[0], np.cumsum(live[postings.counts.indices])])
            indptr = postings.counts.indptr
            for term, n in zip(postings.terms, held[indptr[1:]] - held[indptr[:-1]], strict=True):
                if n:
                    frequency[term] = frequency.get(term, 0) + int(n)
        if within is None:
            return Bm25Statistics(self._size, self._tokens, frequency)
        return Bm25Statistics(int(within.sum()), int(self._lengths[within].sum()), frequency)

    def statistics(self, query: str, within: Allowed | None = None) -> Bm25Statistics:
        """The statistics of these segments (of their ``within`` sentences) for ``query``."""
        terms = sorted(set(tokenize(query)))
        if within is None:
            frequency = {term: int(self._postings(term)[0].size) for term in terms}
            return Bm25Statistics(self._size, self._tokens, frequency)
        frequency = {term: int(within[self._postings(term)[0]].sum()) for term in terms}
        return Bm25Statistics(int(within.sum()), int(self._lengths[within].sum()), frequency)

    def search(
        self,
        query: str,
        k: int,
        statistics: Bm25Statistics | None = None,
        allowed: Allowed | None = None,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Scores and positions of the best ``k`` sentences with any query term, best first.

        Only the postings of the query's terms are read, never a row per sentence. Without
        ``statistics`` the corpus's own are used.
        """
        size = statistics.sentences if statistics else self._size
        tokens = statistics.tokens if statistics else self._tokens
        average = max(tokens / size if size else 1.0, 1e-9)
        hits: list[npt.NDArray[np.int64]] = []
        gains: list[npt.NDArray[np.float32]] = []
        for term in sorted(set(tokenize(query))) if self._parts else ():
            where, tf = self._postings(term)
            if not where.size:
                continue
            df = statistics.frequency.get(term, where.size) if statistics else where.size
            idf = math.log(1 + (size - df + 0.5) / (df + 0.5))
            # Lucene's length normalisation: k1 * (1 - b + b * length / average).
            norm = self.K1 * (1 - self.B + self.B * self._lengths[where] / average)
            hits.append(where)
            gains.append((idf * tf / (tf + norm)).astype(np.float32))
        if not hits:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        sentences, at = np.unique(np.concatenate(hits), return_inverse=True)
        scores = np.bincount(at, weights=np.concatenate(gains)).astype(np.float32)
        if allowed is not None:  # scored with the statistics given, kept in scope
            keep = allowed[sentences]
            sentences, scores = sentences[keep], scores[keep]
        top = np.argsort(-scores, kind="stable")[:k]
        return scores[top], sentences[top].astype(np.int64)


class StackedVectors:
    """The live rows of every segment's vectors, read by sentence position.

    Reads gather from the segments' own arrays, so a write does not copy every vector of
    the corpus into a new matrix, and the vectors are held once.
    """

    def __init__(self, blocks: Sequence[npt.NDArray[np.float32]], rows: Sequence[Positions],
                 dim: int) -> None:  # fmt: skip
        self._blocks = list(blocks)
        # For each sentence position: the segment that holds it, and its row there.
        self._owner = np.concatenate(
            [
                np.zeros(0, dtype=np.int32),
                *(np.full(len(r), k, np.int32) for k, r in enumerate(rows)),
            ]
        )
        self._row = np.concatenate([np.zeros(0, dtype=np.int64), *rows]).astype(np.int64)
        self.shape = (len(self._row), dim)

    def __len__(self) -> int:
        return len(self._row)

    def __getitem__(
        self, key: int | Sequence[int] | npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """One vector for an int position, a matrix for a list or array of them."""
        ids = np.asarray(key, dtype=np.int64)
        if ids.ndim == 0:
            return self._blocks[self._owner[ids]][self._row[ids]]
        out = np.empty((len(ids), self.shape[1]), dtype=np.float32)
        owners, rows = self._owner[ids], self._row[ids]
        for k in np.unique(owners):
            hit = owners == k
            out[hit] = self._blocks[k][rows[hit]]
        return out

    def __array__(self, dtype: object = None, copy: object = None) -> npt.NDArray[np.float32]:
        return self[np.arange(len(self))]


class FanOutStore:
    """Nearest neighbours over every segment's FAISS index, merged into one ranking."""

    def __init__(self, stores: Sequence[FaissStore]) -> None:
        self._stores = [s for s in stores if len(s)]
        self._size = sum(len(s) for s in self._stores)

    @property
    def kind(self) -> str:
        """How the segments are searched: ``flat``, ``hnsw``, ``ivfpq``, or a mix: ``flat+hnsw``."""
        return "+".join(sorted({s.kind for s in self._stores})) or "flat"

    def __len__(self) -> int:
        return self._size

    def search(
        self, queries: npt.NDArray[np.float32], k: int, allowed: Allowed | None = None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Top ``k`` sentence positions and scores per query; missing ones are -1."""
        k = max(1, min(k, self._size))
        if not self._stores:
            return (np.full((len(queries), k), -np.inf, dtype=np.float32),
                    np.full((len(queries), k), -1, dtype=np.int64))  # fmt: skip
        found = [s.search(queries, k, allowed) for s in self._stores]
        scores = np.concatenate([f[0] for f in found], axis=1)
        ids = np.concatenate([f[1] for f in found], axis=1)
        scores = np.where(ids >= 0, scores, -np.inf)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)
