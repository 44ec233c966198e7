"""The index build as stages over batches of rows: the shape Ray Data's ``map_batches`` calls.

    read_documents(paths)       documents: doc_id, title, text
    split_batch(batch)          sentence rows: doc_id, sentence_id, start, end, text, tokens
    EmbedBatch()(batch)         the same rows with a "vector" column
    assemble(documents, rows)   the index: chunks, FAISS, BM25, manifest

A batch is a dict of equal-length columns. ``CorpusIndex.build`` runs the same stages in one
process; a distributed build runs the middle two on workers and assembles the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from index.documents import Document
from index.embed import Embedder, SentenceTransformerEmbedder
from index.lexical import tokenize
from index.split import Sentence, segment

if TYPE_CHECKING:
    pass

__all__ = ["EmbedBatch", "assemble", "sentences_of_rows", "split_batch"]

Batch = dict[str, list[Any]]
SENTENCE_COLUMNS = ("doc_id", "sentence_id", "start", "end", "text", "tokens")


def split_batch(batch: Batch) -> Batch:
    """Documents (columns ``doc_id``, ``text``) to their sentences, with BM25 tokens."""
    rows: Batch = {column: [] for column in SENTENCE_COLUMNS}
    for doc_id, text in zip(batch["doc_id"], batch["text"], strict=True):
        for s in segment(doc_id, text):
            rows["doc_id"].append(s.doc_id)
            rows["sentence_id"].append(s.sentence_id)
            rows["start"].append(s.start)
            rows["end"].append(s.end)
            rows["text"].append(s.text)
            rows["tokens"].append(tokenize(s.text))
    return rows


class EmbedBatch:
    """Adds a ``vector`` column embedding ``text``; the model loads once per instance.

    Pass it to ``map_batches`` as a class, so that each actor of the pool loads the model once.
    """

    def __init__(self, embedder: Embedder | None = None) -> None:
        self.embedder = embedder or SentenceTransformerEmbedder()

    def __call__(self, batch: Batch) -> Batch:
        """The batch with its vectors."""
        vectors = self.embedder.encode(list(batch["text"]))
        return {**batch, "vector": list(vectors)}


def sentences_of_rows(rows: Batch) -> dict[str, tuple[list[Sentence], list[list[str]]]]:
    """Sentence rows grouped by document, in row order: each document's sentences and tokens."""
    grouped: dict[str, tuple[list[Sentence], list[list[str]]]] = {}
    for doc_id, sentence_id, start, end, text, tokens in zip(
        *(rows[c] for c in SENTENCE_COLUMNS), strict=True
    ):
        sentences, token_lists = grouped.setdefault(doc_id, ([], []))
        sentences.append(Sentence(sentence_id, doc_id, int(start), int(end), text))
        token_lists.append(list(tokens))
    return grouped


def assemble(documents: Sequence[Document], rows: Batch, embedder: Embedder, **build: Any) -> Any:
    """The index of ``documents`` from their embedded sentence rows (any order of batches).

    ``embedder`` only names the model and its size here; every vector comes from the rows.
    """
    from index.corpus import CorpusIndex

    grouped = sentences_of_rows(rows)
    vectors = {
        sid: np.asarray(v, dtype=np.float32)
        for sid, v in zip(rows["sentence_id"], rows["vector"], strict=True)
    }
    return CorpusIndex.build(
        documents,
        embedder,
        reuse=vectors,
        split={doc_id: grouped.get(doc_id, ([], [])) for doc_id in (d.doc_id for d in documents)},
        **build,
    )
