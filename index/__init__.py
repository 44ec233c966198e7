"""Corpus text to a searchable index: segment, chunk, embed, store."""

from index.chunk import Chunk, chunk_sentences
from index.corpus import (
    FORMAT_VERSION,
    MAX_SEGMENTS,
    CorpusIndex,
    IndexFormatError,
    IndexMissingError,
    Manifest,
    hold_snapshots,
    load_or_build,
    release_snapshots,
)
from index.documents import Document, corpus_checksum, markdown_title, read_documents
from index.embed import Embedder, SentenceTransformerEmbedder, Vectors
from index.lexical import stem_words, tokenize
from index.ray import build_on_ray
from index.search import HNSW_THRESHOLD, FaissStore, VectorStore
from index.segment import Bm25, FanOutStore, Segment
from index.split import Sentence, segment, split_spans
from index.stages import EmbedBatch, assemble, split_batch

__all__ = [
    "FORMAT_VERSION",
    "HNSW_THRESHOLD",
    "MAX_SEGMENTS",
    "Bm25",
    "Chunk",
    "CorpusIndex",
    "Document",
    "EmbedBatch",
    "Embedder",
    "FaissStore",
    "FanOutStore",
    "IndexFormatError",
    "IndexMissingError",
    "Manifest",
    "Segment",
    "Sentence",
    "SentenceTransformerEmbedder",
    "VectorStore",
    "Vectors",
    "assemble",
    "build_on_ray",
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
    "stem_words",
    "tokenize",
]
