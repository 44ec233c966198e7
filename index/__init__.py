"""Corpus text to a searchable index: segment, chunk, embed, store."""

from index._build import FORMAT_VERSION, CorpusIndex, IndexFormatError, Manifest, load_or_build
from index._chunk import Chunk, chunk_sentences
from index._documents import Document, corpus_checksum, read_documents
from index._embed import Embedder, SentenceTransformerEmbedder, Vectors
from index._segment import Sentence, segment, split_spans
from index._store import FaissStore, VectorStore

__all__ = [
    "FORMAT_VERSION",
    "Chunk",
    "CorpusIndex",
    "Document",
    "Embedder",
    "FaissStore",
    "IndexFormatError",
    "Manifest",
    "Sentence",
    "SentenceTransformerEmbedder",
    "VectorStore",
    "Vectors",
    "chunk_sentences",
    "corpus_checksum",
    "load_or_build",
    "read_documents",
    "segment",
    "split_spans",
]
