"""The vector-store seam and its FAISS implementation."""

from __future__ import annotations

from pathlib import Path
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

    def save(self, path: Path) -> None: ...


HNSW_THRESHOLD = 20_000
HNSW_M = 32
HNSW_EF_SEARCH = 128


class FaissStore:
    """Inner-product search: exact (flat) for small corpora, HNSW above a size threshold.

    FAISS ids are slots. A store made by :meth:`updated` maps slots to sentence positions
    and leaves the slots of removed sentences dead (tombstones): a write then costs its
    own vectors, not a rebuild of the graph. Past ``MAX_DEAD_SHARE`` dead slots the store
    is compacted (built anew from the live vectors).
    """

    MAX_DEAD_SHARE = 0.25

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

    def slots_of(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The slot of each sentence position."""
        if self._positions is None:
            return positions.astype(np.int64)
        slot_of_position = np.empty(self._live, dtype=np.int64)
        live = np.nonzero(self._positions >= 0)[0]
        slot_of_position[self._positions[live]] = live
        return slot_of_position[positions]

    def updated(
        self,
        kept: npt.NDArray[np.int64],
        added: npt.NDArray[np.float32],
        vectors: npt.NDArray[np.float32],
        *,
        hnsw_threshold: int = HNSW_THRESHOLD,
    ) -> FaissStore:
        """A copy of this store for a new sentence list: ``kept``, then ``added``.

        ``kept`` are the old positions of the sentences that stay, in their new order;
        ``added`` the vectors of the new sentences that follow them; ``vectors`` every new
        row, for when a rebuild is due. The slots of sentences not kept die. This store is
        left as it is for its readers.
        """
        total = int(self._index.ntotal) + len(added)
        live = len(kept) + len(added)
        crosses = (live >= hnsw_threshold) != (self.kind == "hnsw")
        if crosses or total - live > self.MAX_DEAD_SHARE * max(total, 1):
            return FaissStore.from_vectors(vectors, hnsw_threshold=hnsw_threshold)
        positions = np.full(total, -1, dtype=np.int64)
        positions[self.slots_of(kept)] = np.arange(len(kept))
        positions[self._index.ntotal :] = np.arange(len(kept), live)
        index = faiss.clone_index(self._index)
        if len(added):
            index.add(added)
        identity = total == live and bool((positions == np.arange(total)).all())
        return FaissStore(index, None if identity else positions)

    @classmethod
    def load(cls, path: Path) -> FaissStore:
        """Read a store written by :meth:`save`."""
        slots = path.with_suffix(".slots.npy")
        positions = np.load(slots, allow_pickle=False) if slots.exists() else None
        return cls(faiss.read_index(str(path)), positions)

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

    def save(self, path: Path) -> None:
        """Write the index to ``path``, and its slot map beside it when there is one."""
        faiss.write_index(self._index, str(path))
        if self._positions is not None:
            np.save(path.with_suffix(".slots.npy"), self._positions, allow_pickle=False)
