"""The index build as stages over batches of rows: the shape Ray Data's ``map_batches`` calls.

    read_documents(paths)       documents: doc_id, title, text
    split_batch(batch)          sentence rows: doc_id, sentence_id, start, end, text, tokens
    EmbedBatch()(batch)         the same rows with a "vector" column
    writer.assemble(documents, rows)   the index: chunks, FAISS, BM25, manifest

A batch is a dict of equal-length columns. ``writer.build_index`` runs the same stages in
one process; a distributed build runs the middle two on workers, and ``writer.assemble``
makes the index of their rows.
"""

from __future__ import annotations

from typing import Any

from index.embed import Embedder, SentenceTransformerEmbedder
from index.lexical import tokenize
from index.split import Sentence, split_sentences

__all__ = ["EmbedBatch", "sentences_of_rows", "split_batch"]

Batch = dict[str, list[Any]]
SENTENCE_COLUMNS = ("doc_id", "sentence_id", "start", "end", "text", "tokens")


def split_batch(batch: Batch) -> Batch:
    """Documents (columns ``doc_id``, ``text``) to their sentences, with BM25 tokens."""
    rows: Batch = {column: [] for column in SENTENCE_COLUMNS}
    for doc_id, text in zip(batch["doc_id"], batch["text"], strict=True):
        for s in split_sentences(doc_id, text):
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
