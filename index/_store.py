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
    """Inner-product search: exact (flat) for small corpora, HNSW above a size threshold."""

    def __init__(self, index: faiss.Index) -> None:
        self._index = index

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

    def extended(
        self, vectors: npt.NDArray[np.float32], *, hnsw_threshold: int = HNSW_THRESHOLD
    ) -> FaissStore:
        """A copy of this index with ``vectors`` appended (ids continue from ``len(self)``).

        This store is left as it is for its readers. Adding to an HNSW graph costs
        what the new vectors cost, where building it again costs the whole corpus. When the
        total crosses ``hnsw_threshold`` the kind changes, so the index is built anew.
        """
        total = len(self) + len(vectors)
        if (total >= hnsw_threshold) != (self.kind == "hnsw"):
            existing = self._index.reconstruct_n(0, len(self)) if len(self) else vectors[:0]
            return FaissStore.from_vectors(
                np.vstack([existing, vectors]), hnsw_threshold=hnsw_threshold
            )
        index = faiss.clone_index(self._index)
        if len(vectors):
            index.add(vectors)
        return FaissStore(index)

    @classmethod
    def load(cls, path: Path) -> FaissStore:
        """Read an index written by :meth:`save`."""
        return cls(faiss.read_index(str(path)))

    @property
    def kind(self) -> str:
        """``flat`` (exact) or ``hnsw`` (approximate)."""
        return "hnsw" if isinstance(self._index, faiss.IndexHNSWFlat) else "flat"

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self._index.d)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def search(
        self, queries: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Top ``k`` ids and scores per query; missing slots have id -1."""
        k = max(1, min(k, len(self)))
        hnsw = getattr(self._index, "hnsw", None)
        if hnsw is not None:
            hnsw.efSearch = max(HNSW_EF_SEARCH, k)
        scores, ids = self._index.search(queries, k)
        return scores, ids

    def save(self, path: Path) -> None:
        """Write the index to ``path``."""
        faiss.write_index(self._index, str(path))
