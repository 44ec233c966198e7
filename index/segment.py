"""Immutable index segments, in the manner of Lucene, and the searches that fan out over them.

A segment holds some documents with their sentences, chunks and vectors, a FAISS index of
those vectors and the BM25 postings of their terms. It is written once and never changed:
a write adds a new small segment and tombstones the replaced documents in old ones, and a
merge folds adjacent small segments into one. Searches run over every segment and merge
their results; BM25 takes its statistics (live sentence count, average length, document
frequencies) over the live sentences of all segments, so a score does not depend on how
the corpus happens to be cut into segments.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import faiss
import msgspec
import numpy as np
import numpy.typing as npt
import scipy.sparse

from index.chunk import Chunk
from index.documents import Document
from index.lexical import tokenize
from index.search import COMPRESS_THRESHOLD, HNSW_THRESHOLD, FaissStore
from index.split import Sentence

__all__ = [
    "Bm25",
    "FanOutStore",
    "Postings",
    "Segment",
    "StackedVectors",
    "new_name",
    "read_documents_jsonl",
]

Positions = npt.NDArray[np.int64]


def new_name() -> str:
    """A name that sorts by creation time and does not collide across processes."""
    return f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, eq=False)
class Postings:
    """A segment's term frequencies: rows are its sentences, columns its terms."""

    terms: dict[str, int]
    counts: scipy.sparse.csc_array  # float32 term frequency
    lengths: npt.NDArray[np.float32]  # tokens per sentence

    @classmethod
    def from_tokens(cls, tokens: Sequence[list[str]]) -> Postings:
        """Postings of sentences given as their :func:`tokenize` tokens."""
        terms: dict[str, int] = {}
        rows, cols = [], []
        for row, sentence in enumerate(tokens):
            for token in sentence:
                rows.append(row)
                cols.append(terms.setdefault(token, len(terms)))
        data = np.ones(len(rows), dtype=np.float32)
        counts = scipy.sparse.csc_array(
            (data, (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))),
            shape=(len(tokens), len(terms)),
        )
        counts.sum_duplicates()
        lengths = np.asarray([len(t) for t in tokens], dtype=np.float32)
        return cls(terms, counts, lengths)

    def column(self, term: str) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
        """The rows that hold ``term`` and how often each holds it."""
        col = self.terms.get(term)
        if col is None:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)
        lo, hi = self.counts.indptr[col], self.counts.indptr[col + 1]
        return self.counts.indices[lo:hi], self.counts.data[lo:hi]


class Bm25:
    """BM25 over the live sentences of every segment, with corpus-wide statistics.

    Lucene's formula with bm25s's defaults (k1 1.5, b 0.75). bm25s bakes one index's own
    statistics into the scores it stores, so it cannot score segments as one corpus; the
    postings here keep raw counts and the statistics are taken at search time.
    """

    K1 = 1.5
    B = 0.75

    def __init__(self, parts: Sequence[tuple[Postings, Positions]], size: int) -> None:
        self._parts = parts  # each segment's postings and the global position of each row
        self._size = size
        lengths = np.zeros(size, dtype=np.float32)
        for postings, positions in parts:
            live = positions >= 0
            lengths[positions[live]] = postings.lengths[live]
        average = float(lengths.mean()) if size else 1.0
        # Lucene's length normalisation, per sentence: k1 * (1 - b + b * length / average).
        self._norm = self.K1 * (1 - self.B + self.B * lengths / max(average, 1e-9))

    def search(self, query: str, k: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Scores and positions of the best ``k`` sentences with any query term, best first.

        Only the postings of the query's terms are read, never a row per sentence.
        """
        hits: list[npt.NDArray[np.int64]] = []
        gains: list[npt.NDArray[np.float32]] = []
        for term in set(tokenize(query)) if self._parts else ():
            found, counts = [], []
            for postings, positions in self._parts:
                rows, tf = postings.column(term)
                where = positions[rows]
                live = where >= 0
                found.append(where[live])
                counts.append(tf[live])
            where, tf = np.concatenate(found), np.concatenate(counts)
            if not where.size:
                continue
            idf = math.log(1 + (self._size - where.size + 0.5) / (where.size + 0.5))
            hits.append(where)
            gains.append((idf * tf / (tf + self._norm[where])).astype(np.float32))
        if not hits:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        sentences, at = np.unique(np.concatenate(hits), return_inverse=True)
        scores = np.bincount(at, weights=np.concatenate(gains)).astype(np.float32)
        top = np.argsort(-scores, kind="stable")[:k]
        return scores[top], sentences[top].astype(np.int64)


class StackedVectors:
    """The live rows of every segment's vectors, read by sentence position.

    Reads gather from the segments' own arrays, so a write does not copy every vector of
    the corpus into a new matrix, and the vectors are held once.
    """

    def __init__(self, blocks: Sequence[npt.NDArray[np.float32]], rows: Sequence[Positions],
                 dim: int) -> None:  # fmt: skip
        self._blocks = list(blocks)
        # For each sentence position: the segment that holds it, and its row there.
        self._owner = np.concatenate(
            [
                np.zeros(0, dtype=np.int32),
                *(np.full(len(r), k, np.int32) for k, r in enumerate(rows)),
            ]
        )
        self._row = np.concatenate([np.zeros(0, dtype=np.int64), *rows]).astype(np.int64)
        self.shape = (len(self._row), dim)

    def __len__(self) -> int:
        return len(self._row)

    def __getitem__(
        self, key: int | Sequence[int] | npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """One vector for an int position, a matrix for a list or array of them."""
        ids = np.asarray(key, dtype=np.int64)
        if ids.ndim == 0:
            return self._blocks[self._owner[ids]][self._row[ids]]
        out = np.empty((len(ids), self.shape[1]), dtype=np.float32)
        owners, rows = self._owner[ids], self._row[ids]
        for k in np.unique(owners):
            hit = owners == k
            out[hit] = self._blocks[k][rows[hit]]
        return out

    def __array__(self, dtype: object = None, copy: object = None) -> npt.NDArray[np.float32]:
        return self[np.arange(len(self))]


class FanOutStore:
    """Nearest neighbours over every segment's FAISS index, merged into one ranking."""

    def __init__(self, stores: Sequence[FaissStore]) -> None:
        self._stores = [s for s in stores if len(s)]
        self._size = sum(len(s) for s in self._stores)

    @property
    def kind(self) -> str:
        """How the segments are searched: ``flat``, ``hnsw``, ``ivfpq``, or a mix: ``flat+hnsw``."""
        return "+".join(sorted({s.kind for s in self._stores})) or "flat"

    def __len__(self) -> int:
        return self._size

    def search(
        self, queries: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Top ``k`` sentence positions and scores per query; missing ones are -1."""
        k = max(1, min(k, self._size))
        if not self._stores:
            return (np.full((len(queries), k), -np.inf, dtype=np.float32),
                    np.full((len(queries), k), -1, dtype=np.int64))  # fmt: skip
        found = [s.search(queries, k) for s in self._stores]
        scores = np.concatenate([f[0] for f in found], axis=1)
        ids = np.concatenate([f[1] for f in found], axis=1)
        scores = np.where(ids >= 0, scores, -np.inf)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


SEGMENT_FILES = (
    "documents.jsonl",
    "sentences.json",
    "chunks.json",
    "vectors.npy",
    "vectors.faiss",
    "terms.json",
    "postings.npz",
)


@dataclass(eq=False)
class Segment:
    """Documents with their sentences, chunks, vectors, FAISS index and BM25 postings."""

    name: str
    documents: list[Document] = field(repr=False)
    sentences: list[Sentence] = field(repr=False)
    chunks: list[Chunk] = field(repr=False)
    vectors: npt.NDArray[np.float32] = field(repr=False)
    dense: faiss.Index = field(repr=False)
    postings: Postings = field(repr=False)
    files: dict[str, str] = field(default_factory=dict, repr=False)  # sha256 of each file

    @classmethod
    def build(
        cls,
        documents: Sequence[Document],
        sentences: list[Sentence],
        chunks: list[Chunk],
        tokens: Sequence[list[str]],
        vectors: npt.NDArray[np.float32],
        *,
        hnsw_threshold: int = HNSW_THRESHOLD,
        compress_threshold: int = COMPRESS_THRESHOLD,
    ) -> Segment:
        """A new segment; ``tokens`` and ``vectors`` have a row per sentence."""
        store = FaissStore.from_vectors(
            vectors, hnsw_threshold=hnsw_threshold, compress_threshold=compress_threshold
        )
        return cls(new_name(), list(documents), sentences, chunks, vectors, store.index,
                   Postings.from_tokens(tokens))  # fmt: skip

    @cached_property
    def sentence_rows(self) -> dict[str, tuple[int, int]]:
        """Each document's ``[first, end)`` rows in ``sentences`` (a document's are adjacent)."""
        return _row_ranges(s.doc_id for s in self.sentences)

    @cached_property
    def chunk_rows(self) -> dict[str, tuple[int, int]]:
        """Each document's ``[first, end)`` rows in ``chunks``."""
        return _row_ranges(c.doc_id for c in self.chunks)

    def write(self, segments: Path) -> None:
        """Write the segment under ``segments/<name>``, fsynced, and record its checksums.

        It is written to a temporary directory first and renamed into place, so a segment
        directory that exists is complete. One that exists already is left as it is.
        """
        final = segments / self.name
        if final.is_dir() and self.files:
            return
        tmp = segments / f".tmp-{self.name}"
        tmp.mkdir(parents=True)
        try:
            enc = msgspec.json.Encoder()
            (tmp / "documents.jsonl").write_bytes(
                b"".join(enc.encode(d) + b"\n" for d in self.documents)
            )
            (tmp / "sentences.json").write_bytes(enc.encode(self.sentences))
            (tmp / "chunks.json").write_bytes(enc.encode(self.chunks))
            np.save(tmp / "vectors.npy", self.vectors, allow_pickle=False)
            faiss.write_index(self.dense, str(tmp / "vectors.faiss"))
            terms = sorted(self.postings.terms, key=self.postings.terms.__getitem__)
            (tmp / "terms.json").write_bytes(enc.encode(terms))
            np.savez(
                tmp / "postings.npz",
                data=self.postings.counts.data,
                indices=self.postings.counts.indices,
                indptr=self.postings.counts.indptr,
                lengths=self.postings.lengths,
            )
            files = {}
            for file in SEGMENT_FILES:
                files[file] = sha256_of(tmp / file)
                fsync(tmp / file)
            fsync(tmp)
            tmp.rename(final)
            fsync(segments)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.files = files

    @classmethod
    def read(cls, directory: Path, files: dict[str, str]) -> Segment:
        """Read a segment written by :meth:`write`, checking each file against ``files``.

        Raises ValueError naming the file at fault.
        """
        for file in SEGMENT_FILES:
            if file not in files:
                raise ValueError(f"the manifest does not cover {directory.name}/{file}")
            if sha256_of(directory / file) != files[file]:
                raise ValueError(f"{directory.name}/{file} is corrupt (checksum mismatch)")
        documents = read_documents_jsonl(directory / "documents.jsonl")
        sentences = msgspec.json.decode(
            (directory / "sentences.json").read_bytes(), type=list[Sentence]
        )
        chunks = msgspec.json.decode((directory / "chunks.json").read_bytes(), type=list[Chunk])
        # Mapped, not read: the pages a search touches are loaded, and they are shared
        # with the OS page cache rather than copied (a compressed index keeps only codes).
        vectors = np.load(directory / "vectors.npy", allow_pickle=False, mmap_mode="r")
        dense = faiss.read_index(str(directory / "vectors.faiss"))
        terms = msgspec.json.decode((directory / "terms.json").read_bytes(), type=list[str])
        with np.load(directory / "postings.npz", allow_pickle=False) as arrays:
            counts = scipy.sparse.csc_array(
                (arrays["data"], arrays["indices"], arrays["indptr"]),
                shape=(len(sentences), len(terms)),
            )
            lengths = arrays["lengths"]
        if not (len(vectors) == dense.ntotal == len(sentences) == len(lengths)):
            raise ValueError(f"{directory.name}: counts disagree")
        postings = Postings({t: i for i, t in enumerate(terms)}, counts, lengths)
        return cls(directory.name, documents, sentences, chunks, vectors, dense, postings,
                   dict(files))  # fmt: skip


def read_documents_jsonl(path: Path) -> list[Document]:
    """The documents of a ``documents.jsonl`` that an index wrote."""
    return [
        msgspec.json.decode(line, type=Document) for line in path.read_bytes().splitlines() if line
    ]


def _row_ranges(doc_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
    ranges: dict[str, tuple[int, int]] = {}
    for row, doc_id in enumerate(doc_ids):
        first = ranges.get(doc_id, (row, row))[0]
        ranges[doc_id] = (first, row + 1)
    return ranges


def sha256_of(path: Path) -> str:
    """The sha256 of a file, in hex."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def fsync(path: Path) -> None:
    """Flush a file or directory to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
