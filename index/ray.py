"""The index build on Ray Data: the stages of ``index/stages.py`` as ``map_batches`` steps.

Optional: ``pip install 'citeqa[ray]'``. Without an address a local Ray starts (and stops);
with one (``ray start --head`` prints it) the build runs on that cluster, whose workers
need citeqa installed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from index.corpus import CorpusIndex
from index.documents import Document
from index.embed import EmbeddedAlready, Embedder, SentenceTransformerEmbedder
from index.stages import EmbedBatch, split_batch
from index.writer import assemble

__all__ = ["build_on_ray"]


def build_on_ray(
    docs: Sequence[Document],
    *,
    model_id: str = SentenceTransformerEmbedder.model_id,
    address: str | None = None,
    make_embedder: Callable[[], Embedder] | None = None,
    actors: int = 2,
    docs_per_batch: int = 16,
    sentences_per_batch: int = 256,
) -> CorpusIndex:
    """Split and embed ``docs`` on Ray, then assemble the index here.

    Each of ``actors`` embedding actors loads its model once (``make_embedder``, default
    the service's embedder, whose id is ``model_id``).
    """
    import ray  # the optional extra: imported only for this engine

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        factory = make_embedder

        class Embed(EmbedBatch):
            def __init__(self) -> None:
                super().__init__(factory() if factory is not None else None)

        split: Any = split_batch  # Ray passes columns as numpy arrays; any sequence will do
        dataset = ray.data.from_items([{"doc_id": d.doc_id, "text": d.text} for d in docs])
        rows: list[dict[str, Any]] = (
            dataset.map_batches(split, batch_size=docs_per_batch)
            .map_batches(Embed, batch_size=sentences_per_batch, concurrency=actors)
            .take_all()
        )
    finally:
        if started_here:
            ray.shutdown()
    columns: dict[str, list[Any]] = {k: [r[k] for r in rows] for k in (rows[0] if rows else {})}
    if not columns:
        columns = {c: [] for c in ("doc_id", "sentence_id", "start", "end", "text", "tokens")}
        columns["vector"] = []
    dim = len(columns["vector"][0]) if columns["vector"] else 0
    index: CorpusIndex = assemble(docs, columns, EmbeddedAlready(model_id, dim))
    return index
