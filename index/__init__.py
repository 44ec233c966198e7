"""Corpus text to a searchable index: segment, chunk, embed, store."""

from index._build import (
    FORMAT_VERSION,
    CorpusIndex,
    IndexFormatError,
    IndexMissingError,
    Manifest,
    hold_snapshots,
    load_or_build,
    release_snapshots,
)
from index._chunk import Chunk, chunk_sentences
from index._documents import Document, corpus_checksum, markdown_title, read_documents
from index._embed import Embedder, SentenceTransformerEmbedder, Vectors
from index._lexical import LexicalIndex, tokenize
from index._segment import Sentence, segment, split_spans
from index._stages import EmbedBatch, assemble, split_batch
from index._store import HNSW_THRESHOLD, FaissStore, VectorStore

__all__ = [
    "FORMAT_VERSION",
    "HNSW_THRESHOLD",
    "Chunk",
    "CorpusIndex",
    "Document",
    "EmbedBatch",
    "Embedder",
    "FaissStore",
    "IndexFormatError",
    "IndexMissingError",
    "LexicalIndex",
    "Manifest",
    "Sentence",
    "SentenceTransformerEmbedder",
    "VectorStore",
    "Vectors",
    "assemble",
    "chunk_sentences",
    "corpus_checksum",
    "hold_snapshots",
    "load_or_build",
    "markdown_title",
    "read_documents",
    "release_snapshots",
    "segment",
    "split_batch",
    "split_spans",
    "tokenize",
]
