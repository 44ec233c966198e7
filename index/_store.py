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

    def __len__(self) -> int: ...

    def search(
        self, queries: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...

    def vectors(self, ids: list[int]) -> npt.NDArray[np.float32]: ...

    def save(self, path: Path) -> None: ...


class FaissStore:
    """Exact inner-product search in a FAISS flat index."""

    def __init__(self, index: faiss.Index) -> None:
        self._index = index

    @classmethod
    def from_vectors(cls, vectors: npt.NDArray[np.float32]) -> FaissStore:
        """Index ``vectors`` (rows are unit vectors); row i gets id i."""
        index = faiss.IndexFlatIP(vectors.shape[1])
        if len(vectors):
            index.add(vectors)
        return cls(index)

    @classmethod
    def load(cls, path: Path) -> FaissStore:
        """Read an index written by :meth:`save`."""
        return cls(faiss.read_index(str(path)))

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
        scores, ids = self._index.search(queries, k)
        return scores, ids

    def vectors(self, ids: list[int]) -> npt.NDArray[np.float32]:
        """The stored vectors of ``ids``, one row each."""
        if not ids:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.vstack([self._index.reconstruct(int(i)) for i in ids]).astype(np.float32)

    def save(self, path: Path) -> None:
        """Write the index to ``path``."""
        faiss.write_index(self._index, str(path))
