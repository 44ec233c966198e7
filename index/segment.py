"""Immutable index segments, in the manner of Lucene, and their file format.

A segment holds some documents with their sentences, chunks and vectors, a FAISS index of
those vectors and the BM25 postings of their terms. It is written once and never changed:
a write adds a new small segment and tombstones the replaced documents in old ones, and a
merge folds adjacent small segments into one (``index/writer.py``). Searches over all
segments are ``index/search.py``'s.
"""

from __future__ import annotations

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
from index.documents import Document, read_documents_jsonl
from index.files import fsync, sha256_of
from index.search import COMPRESS_THRESHOLD, HNSW_THRESHOLD, FaissStore, Postings
from index.split import Sentence

__all__ = ["SEGMENT_FILES", "Segment", "new_name"]


def new_name() -> str:
    """A name that sorts by creation time and does not collide across processes."""
    return f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"


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


def _row_ranges(doc_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
    ranges: dict[str, tuple[int, int]] = {}
    for row, doc_id in enumerate(doc_ids):
        first = ranges.get(doc_id, (row, row))[0]
        ranges[doc_id] = (first, row + 1)
    return ranges
