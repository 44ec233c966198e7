"""Chunks: windows of whole sentences, used as retrieval context."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from index.split import Sentence

__all__ = ["Chunk", "chunk_sentences"]


class Chunk(msgspec.Struct, frozen=True):
    """A run of consecutive sentences of one document, ``text == doc.text[start:end]``."""

    chunk_id: str
    doc_id: str
    start: int
    end: int
    first: int
    last: int  # index of the last sentence, inclusive, within the document


def chunk_sentences(
    doc_id: str, sentences: Sequence[Sentence], size: int = 3, stride: int = 2
) -> list[Chunk]:
    """Cut one document's sentences into overlapping windows of ``size`` sentences."""
    chunks: list[Chunk] = []
    n = len(sentences)
    begin = 0
    while begin < n:
        last = min(begin + size, n) - 1
        chunks.append(
            Chunk(
                chunk_id=f"{doc_id}#c{len(chunks)}",
                doc_id=doc_id,
                start=sentences[begin].start,
                end=sentences[last].end,
                first=begin,
                last=last,
            )
        )
        if last == n - 1:
            break
        begin += stride
    return chunks
