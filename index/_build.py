"""Building, persisting and loading the corpus index.

Layout of an index directory::

    DIR/CURRENT                 name of the live snapshot, replaced atomically
    DIR/snapshots/<name>/       manifest.json, documents.jsonl, sentences.json,
                                chunks.json, vectors.faiss
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from index._chunk import Chunk, chunk_sentences
from index._documents import Document, corpus_checksum
from index._embed import Embedder
from index._segment import Sentence, segment
from index._store import FaissStore

__all__ = ["FORMAT_VERSION", "CorpusIndex", "IndexFormatError", "Manifest", "load_or_build"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


class IndexFormatError(Exception):
    """The directory holds no index, a corrupt one, or one of another format or model."""


class Manifest(msgspec.Struct, frozen=True):
    """What a snapshot holds and what built it."""

    format_version: int
    model_id: str
    dim: int
    corpus_checksum: str
    documents: int
    sentences: int
    chunks: int
    built_at: float


@dataclass
class CorpusIndex:
    """Documents, their sentences and chunks, and the sentence vectors."""

    manifest: Manifest
    documents: dict[str, Document]
    sentences: list[Sentence]
    chunks: list[Chunk]
    store: FaissStore
    _doc_sentences: dict[str, list[int]] = field(default_factory=dict, repr=False)
    _doc_chunks: dict[str, list[int]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for i, sentence in enumerate(self.sentences):
            self._doc_sentences.setdefault(sentence.doc_id, []).append(i)
        for i, chunk in enumerate(self.chunks):
            self._doc_chunks.setdefault(chunk.doc_id, []).append(i)

    def sentences_of(self, doc_id: str) -> list[Sentence]:
        """Sentences of one document, in order."""
        return [self.sentences[i] for i in self._doc_sentences.get(doc_id, [])]

    def position(self, sentence_index: int) -> int:
        """Index of a sentence within its own document."""
        sentence = self.sentences[sentence_index]
        return self._doc_sentences[sentence.doc_id].index(sentence_index)

    def chunk_of(self, sentence_index: int) -> Chunk:
        """The first chunk that holds the sentence."""
        sentence = self.sentences[sentence_index]
        pos = self.position(sentence_index)
        for i in self._doc_chunks[sentence.doc_id]:
            chunk = self.chunks[i]
            if chunk.first <= pos <= chunk.last:
                return chunk
        raise KeyError(sentence.sentence_id)  # pragma: no cover - chunks cover every sentence

    @classmethod
    def build(
        cls, docs: Sequence[Document], embedder: Embedder, *, progress: bool = False
    ) -> CorpusIndex:
        """Segment, chunk and embed ``docs``."""
        sentences: list[Sentence] = []
        chunks: list[Chunk] = []
        for doc in docs:
            doc_sentences = segment(doc.doc_id, doc.text)
            sentences.extend(doc_sentences)
            chunks.extend(chunk_sentences(doc.doc_id, doc_sentences))
        vectors = embedder.encode([s.text for s in sentences], progress=progress)
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            model_id=embedder.model_id,
            dim=embedder.dim,
            corpus_checksum=corpus_checksum(docs),
            documents=len(docs),
            sentences=len(sentences),
            chunks=len(chunks),
            built_at=time.time(),
        )
        return cls(
            manifest=manifest,
            documents={d.doc_id: d for d in docs},
            sentences=sentences,
            chunks=chunks,
            store=FaissStore.from_vectors(vectors),
        )

    def save(self, directory: Path) -> Path:
        """Write a new snapshot under ``directory`` and make it current, atomically."""
        snapshots = directory / "snapshots"
        snapshots.mkdir(parents=True, exist_ok=True)
        name = f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}"
        tmp = snapshots / f".tmp-{name}"
        tmp.mkdir()
        enc = msgspec.json.Encoder()
        (tmp / "documents.jsonl").write_bytes(
            b"".join(enc.encode(d) + b"\n" for d in self.documents.values())
        )
        (tmp / "sentences.json").write_bytes(enc.encode(self.sentences))
        (tmp / "chunks.json").write_bytes(enc.encode(self.chunks))
        self.store.save(tmp / "vectors.faiss")
        (tmp / "manifest.json").write_bytes(msgspec.json.format(enc.encode(self.manifest)))
        for child in tmp.iterdir():
            _fsync(child)
        final = snapshots / name
        tmp.rename(final)
        _fsync(snapshots)
        pointer = directory / ".CURRENT.tmp"
        pointer.write_text(name)
        _fsync(pointer)
        os.replace(pointer, directory / "CURRENT")
        _fsync(directory)
        for old in snapshots.iterdir():
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)
        return final

    @classmethod
    def load(cls, directory: Path) -> CorpusIndex:
        """Load the current snapshot of ``directory``."""
        try:
            name = (directory / "CURRENT").read_text().strip()
            snap = directory / "snapshots" / name
            manifest = msgspec.json.decode((snap / "manifest.json").read_bytes(), type=Manifest)
            if manifest.format_version != FORMAT_VERSION:
                raise IndexFormatError(
                    f"{directory}: index format {manifest.format_version}, "
                    f"this version reads {FORMAT_VERSION}; rebuild it"
                )
            documents = [
                msgspec.json.decode(line, type=Document)
                for line in (snap / "documents.jsonl").read_bytes().splitlines()
                if line
            ]
            sentences = msgspec.json.decode(
                (snap / "sentences.json").read_bytes(), type=list[Sentence]
            )
            chunks = msgspec.json.decode((snap / "chunks.json").read_bytes(), type=list[Chunk])
            store = FaissStore.load(snap / "vectors.faiss")
        except FileNotFoundError as exc:
            raise IndexFormatError(f"{directory}: no index here ({exc.filename} missing)") from exc
        except (msgspec.DecodeError, RuntimeError, OSError) as exc:
            raise IndexFormatError(f"{directory}: index is corrupt: {exc}") from exc
        if (
            len(store) != manifest.sentences
            or len(sentences) != manifest.sentences
            or store.dim != manifest.dim
        ):
            raise IndexFormatError(f"{directory}: index is corrupt: counts disagree")
        return cls(
            manifest=manifest,
            documents={d.doc_id: d for d in documents},
            sentences=sentences,
            chunks=chunks,
            store=store,
        )


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_or_build(
    directory: Path, docs: Sequence[Document], embedder: Embedder, *, progress: bool = False
) -> CorpusIndex:
    """Load the index in ``directory`` if it matches ``docs`` and the model, else rebuild it."""
    checksum = corpus_checksum(docs)
    try:
        index = CorpusIndex.load(directory)
    except IndexFormatError as exc:
        log.info("building index: %s", exc)
    else:
        m = index.manifest
        if m.corpus_checksum == checksum and m.model_id == embedder.model_id:
            return index
        log.info("rebuilding index: corpus or model changed")
    index = CorpusIndex.build(docs, embedder, progress=progress)
    index.save(directory)
    return index
