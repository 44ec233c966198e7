"""The vector-store seam and its FAISS implementation."""

from __future__ import annotations

from typing import Protocol

import faiss
import numpy as np
import numpy.typing as npt

__all__ = ["FaissStore", "VectorStore"]


class VectorStore(Protocol):
    """Nearest neighbours by inner product over unit vectors."""

    @property
    def kind(self) -> str:
        """The FAISS index kind, as ``/readyz`` reports it."""
        ...

    def __len__(self) -> int: ...

    def search(
        self, queries: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Scores and corpus positions of the ``k`` nearest rows to each query."""
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

    def _raw(
        self, queries: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        hnsw = getattr(self._index, "hnsw", None)
        if hnsw is not None:
            hnsw.efSearch = max(HNSW_EF_SEARCH, k)
        if self._vectors is None or self.kind != "ivfpq":
            scores, ids = self._index.search(queries, k)
            return scores, ids
        faiss.extract_index_ivf(self._index).nprobe = IVF_NPROBE
        _, shortlist = self._index.search(queries, max(k, RERANK))
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        for row, slots in enumerate(shortlist):
            slots = slots[slots >= 0]
            exact = np.asarray(self._vectors[slots]) @ queries[row]
            best = np.argsort(-exact, kind="stable")[:k]
            scores[row, : len(best)], ids[row, : len(best)] = exact[best], slots[best]
        return scores, ids

    def search(
        self, queries: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Top ``k`` sentence positions and scores per query; missing ones are -1."""
        k = max(1, min(k, len(self)))
        if self._positions is None:
            return self._raw(queries, k)
        total = int(self._index.ntotal)
        wide = min(total, 2 * k + 16)  # dead slots are rarely near the top; widen if they are
        while True:
            scores, slots = self._raw(queries, wide)
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
