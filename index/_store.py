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
    def kind(self) -> str: ...

    def __len__(self) -> int: ...

    def search(
        self, queries: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...


HNSW_THRESHOLD = 20_000
HNSW_M = 32
HNSW_EF_SEARCH = 128


class FaissStore:
    """Inner-product search: exact (flat) for small corpora, HNSW above a size threshold.

    FAISS ids are slots. ``positions`` maps each slot to a sentence position, -1 for the
    slots of removed sentences (tombstones), which searches skip: a segment's index stays
    as it was written while the corpus around it changes.
    """

    def __init__(self, index: faiss.Index, positions: npt.NDArray[np.int64] | None = None) -> None:
        self._index = index
        # positions[slot] is the sentence position a slot holds, -1 when dead; None: slot ==
        # position for every slot.
        self._positions = positions
        self._live = int(index.ntotal) if positions is None else int((positions >= 0).sum())

    @classmethod
    def from_vectors(
        cls, vectors: npt.NDArray[np.float32], *, hnsw_threshold: int = HNSW_THRESHOLD
    ) -> FaissStore:
        """Index ``vectors`` (rows are unit vectors); row i gets id i."""
        dim = vectors.shape[1]
        index: faiss.Index
        if len(vectors) >= hnsw_threshold:
            index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
        else:
            index = faiss.IndexFlatIP(dim)
        if len(vectors):
            index.add(vectors)
        return cls(index)

    @property
    def index(self) -> faiss.Index:
        """The FAISS index itself; its ids are slots."""
        return self._index

    @property
    def kind(self) -> str:
        """``flat`` (exact) or ``hnsw`` (approximate)."""
        return "hnsw" if isinstance(self._index, faiss.IndexHNSWFlat) else "flat"

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
        scores, ids = self._index.search(queries, k)
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
