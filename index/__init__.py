"""Corpus text to a searchable index: split, chunk, embed, store, search, snapshot.

Modules by job: ``documents`` (reading .txt, .md, .jsonl), ``split`` (sentences with exact
offsets), ``chunk``, ``lexical`` (the one tokenizer), ``embed`` (the embedder seam),
``segment`` (an immutable segment and its files), ``search`` (FAISS, the fan-out over
segments, BM25), ``corpus`` (the read view), ``writer`` (build, update, merge),
``snapshots`` (the directory: ``CURRENT``, manifests, leases), ``files`` (sha256, fsync),
``stages`` (the build as batch stages) and ``ray`` (those stages on Ray Data).

Imports nothing from ``service``.
"""

from index.chunk import Chunk, chunk_sentences
from index.corpus import FORMAT_VERSION, CorpusIndex, Manifest
from index.documents import (
    DEFAULT_COLLECTION,
    Document,
    corpus_checksum,
    document_key,
    drop_originals,
    keep_originals,
    markdown_title,
    original_name,
    read_documents,
    read_original,
    split_key,
)
from index.embed import (
    BatchingEmbedder,
    EmbeddedAlready,
    Embedder,
    SentenceTransformerEmbedder,
    Vectors,
)
from index.extract import (
    Extracted,
    ExtractionError,
    Run,
    extract,
    page_of,
    pdf_boxes,
    render_page,
)
from index.files import sha256_of
from index.lexical import CJK, CJK_CHAR, WORD, stem_words, tokenize
from index.ray import build_on_ray
from index.search import (
    HNSW_THRESHOLD,
    Allowed,
    Bm25,
    Bm25Statistics,
    FaissStore,
    FanOutStore,
    VectorStore,
)
from index.segment import Segment
from index.snapshots import (
    IndexFormatError,
    IndexMissingError,
    current_snapshot,
    hold_snapshots,
    load_snapshot,
    release_snapshots,
    save_snapshot,
)
from index.split import SPLITTER, Sentence, split_sentences, split_spans
from index.stages import EmbedBatch, split_batch
from index.writer import (
    MAX_SEGMENTS,
    assemble,
    build_index,
    load_or_build,
    merge_plan,
    merged_segment,
    update_index,
    with_merged,
)

__all__ = [
    "CJK",
    "CJK_CHAR",
    "DEFAULT_COLLECTION",
    "FORMAT_VERSION",
    "HNSW_THRESHOLD",
    "MAX_SEGMENTS",
    "SPLITTER",
    "WORD",
    "Allowed",
    "BatchingEmbedder",
    "Bm25",
    "Bm25Statistics",
    "Chunk",
    "CorpusIndex",
    "Document",
    "EmbedBatch",
    "EmbeddedAlready",
    "Embedder",
    "Extracted",
    "ExtractionError",
    "FaissStore",
    "FanOutStore",
    "IndexFormatError",
    "IndexMissingError",
    "Manifest",
    "Run",
    "Segment",
    "Sentence",
    "SentenceTransformerEmbedder",
    "VectorStore",
    "Vectors",
    "assemble",
    "build_index",
    "build_on_ray",
    "chunk_sentences",
    "corpus_checksum",
    "current_snapshot",
    "document_key",
    "drop_originals",
    "extract",
    "hold_snapshots",
    "keep_originals",
    "load_or_build",
    "load_snapshot",
    "markdown_title",
    "merge_plan",
    "merged_segment",
    "original_name",
    "page_of",
    "pdf_boxes",
    "read_documents",
    "read_original",
    "release_snapshots",
    "render_page",
    "save_snapshot",
    "sha256_of",
    "split_batch",
    "split_key",
    "split_sentences",
    "split_spans",
    "stem_words",
    "tokenize",
    "update_index",
    "with_merged",
]
