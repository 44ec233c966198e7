"""Building, updating, persisting and loading the corpus index.

Every change produces a new immutable snapshot; a reader holds one ``CorpusIndex``
for as long as it likes. Layout of an index directory::

    DIR/CURRENT                 name of the live snapshot, replaced atomically
    DIR/snapshots/<name>/       manifest.json (the sha256 of every other file, BM25's too),
                                documents.jsonl,
                                sentences.json, chunks.json, vectors.npy, vectors.faiss,
                                lexical/ (BM25)

A snapshot is written to ``snapshots/.tmp-<name>``, fsynced, renamed into place, and
only then named in ``CURRENT``; a crash at any point leaves the previous snapshot live.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import msgspec
import numpy as np
import numpy.typing as npt

from index._chunk import Chunk, chunk_sentences
from index._documents import Document, corpus_checksum
from index._embed import Embedder
from index._lexical import LexicalIndex, tokenize
from index._segment import SEGMENTER, Sentence
from index._stages import sentences_of_rows, split_batch
from index._store import HNSW_THRESHOLD, FaissStore, VectorStore

__all__ = [
    "FORMAT_VERSION",
    "CorpusIndex",
    "IndexFormatError",
    "IndexMissingError",
    "Manifest",
    "hold_snapshots",
    "load_or_build",
    "release_snapshots",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

FORMAT_VERSION = 2
_DATA_FILES = ("documents.jsonl", "sentences.json", "chunks.json", "vectors.npy", "vectors.faiss")


class IndexFormatError(Exception):
    """The directory holds a corrupt index, or one of another format."""


class IndexMissingError(IndexFormatError):
    """The directory holds no index yet."""


class Manifest(msgspec.Struct, frozen=True):
    """What a snapshot holds, what built it, and the checksum of each of its files."""

    format_version: int
    model_id: str
    dim: int
    corpus_checksum: str
    seed_checksum: str  # of the configured corpus this index was last seeded from
    documents: int
    sentences: int
    chunks: int
    vector_index: str  # "flat" or "hnsw"
    built_at: float
    segmenter: str = "pysbd 0.3.4 en"  # what split the sentences (index/_segment.py)
    files: dict[str, str] = msgspec.field(default_factory=dict)


@dataclass
class CorpusIndex:
    """Documents, their sentences and chunks, sentence vectors, and the dense and BM25 indexes."""

    manifest: Manifest
    documents: dict[str, Document]
    sentences: list[Sentence]
    chunks: list[Chunk]
    vectors: npt.NDArray[np.float32]
    store: VectorStore
    lexical: LexicalIndex
    _doc_sentences: dict[str, list[int]] = field(default_factory=dict, repr=False)
    _doc_chunks: dict[str, list[int]] = field(default_factory=dict, repr=False)
    # Values derived from one document's sentences (BM25 tokens, term counts, ...), kept
    # across writes that leave the document unchanged.
    _derived: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for i, sentence in enumerate(self.sentences):
            self._doc_sentences.setdefault(sentence.doc_id, []).append(i)
        for i, chunk in enumerate(self.chunks):
            self._doc_chunks.setdefault(chunk.doc_id, []).append(i)

    def sentences_of(self, doc_id: str) -> list[Sentence]:
        """Sentences of one document, in order."""
        return [self.sentences[i] for i in self._doc_sentences.get(doc_id, [])]

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        """Chunks of one document, in order."""
        return [self.chunks[i] for i in self._doc_chunks.get(doc_id, [])]

    def positions_of(self, doc_id: str) -> list[int]:
        """Positions (in ``sentences``) of one document's sentences, in order."""
        return self._doc_sentences.get(doc_id, [])

    def derived(self, doc_id: str, name: str, compute: Callable[[list[Sentence]], _T]) -> _T:
        """``compute`` of one document's sentences, computed once per document.

        The value is kept across writes that leave the document unchanged, so it must not
        depend on positions in the index.
        """
        cache = self._derived.setdefault(doc_id, {})
        if name not in cache:
            cache[name] = compute(self.sentences_of(doc_id))
        return cast(_T, cache[name])

    def chunk_of(self, sentence_index: int) -> Chunk:
        """The first chunk that holds the sentence."""
        sentence = self.sentences[sentence_index]
        pos = self._doc_sentences[sentence.doc_id].index(sentence_index)
        for i in self._doc_chunks[sentence.doc_id]:
            chunk = self.chunks[i]
            if chunk.first <= pos <= chunk.last:
                return chunk
        raise KeyError(sentence.sentence_id)  # pragma: no cover - chunks cover every sentence

    # -- building ----------------------------------------------------------------

    @classmethod
    def build(
        cls,
        docs: Sequence[Document],
        embedder: Embedder,
        *,
        progress: bool = False,
        seed_checksum: str | None = None,
        reuse: dict[str, npt.NDArray[np.float32]] | None = None,
        segmented: dict[str, tuple[list[Sentence], list[Chunk]]] | None = None,
        derived: dict[str, dict[str, Any]] | None = None,
        split: dict[str, tuple[list[Sentence], list[list[str]]]] | None = None,
        previous: tuple[FaissStore, npt.NDArray[np.int64]] | None = None,
        hnsw_threshold: int = HNSW_THRESHOLD,
    ) -> CorpusIndex:
        """Segment, chunk and embed ``docs``.

        Vectors in ``reuse`` (by sentence id) are kept, and so are the sentences and chunks
        in ``segmented`` (by doc_id, for documents whose text has not changed): sentence
        splitting is most of what a rebuild costs. ``previous`` is the old vector store and
        the old positions of the first sentences, which it holds: it is updated (their
        vectors kept, the rest added, the removed ones tombstoned) instead of rebuilt.
        ``split`` holds sentences and tokens already made by the split stage
        (``index/_stages.py``); the other documents go through that stage here.
        """
        sentences: list[Sentence] = []
        chunks: list[Chunk] = []
        segmented = segmented or {}
        carried = derived or {}
        fresh_docs = [
            d for d in docs if d.doc_id not in segmented and d.doc_id not in (split or {})
        ]
        split = {
            **(split or {}),
            **sentences_of_rows(
                split_batch(
                    {"doc_id": [d.doc_id for d in fresh_docs], "text": [d.text for d in fresh_docs]}
                )
            ),
        }
        kept_derived: dict[str, dict[str, Any]] = {}
        tokens: list[list[str]] = []
        for doc in docs:
            if doc.doc_id in segmented:
                doc_sentences, doc_chunks = segmented[doc.doc_id]
                cache = carried.get(doc.doc_id, {})
            else:
                doc_sentences, doc_tokens = split.get(doc.doc_id, ([], []))
                doc_chunks = chunk_sentences(doc.doc_id, doc_sentences)
                cache = {"tokens": doc_tokens}
            if "tokens" not in cache:
                cache["tokens"] = _tokens(doc_sentences)
            kept_derived[doc.doc_id] = cache
            tokens.extend(cache["tokens"])
            sentences.extend(doc_sentences)
            chunks.extend(doc_chunks)
        reuse = reuse or {}
        missing = [i for i, s in enumerate(sentences) if s.sentence_id not in reuse]
        vectors = np.zeros((len(sentences), embedder.dim), dtype=np.float32)
        for i, s in enumerate(sentences):
            if s.sentence_id in reuse:
                vectors[i] = reuse[s.sentence_id]
        if missing:  # only new text is embedded
            texts = [sentences[i].text for i in missing]
            vectors[missing] = embedder.encode(texts, progress=progress)
        if previous is not None:
            old, kept = previous
            store = old.updated(kept, vectors[len(kept) :], vectors, hnsw_threshold=hnsw_threshold)
        else:
            store = FaissStore.from_vectors(vectors, hnsw_threshold=hnsw_threshold)
        checksum = corpus_checksum(docs)
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            model_id=embedder.model_id,
            dim=embedder.dim,
            corpus_checksum=checksum,
            seed_checksum=seed_checksum if seed_checksum is not None else checksum,
            documents=len(docs),
            sentences=len(sentences),
            chunks=len(chunks),
            vector_index=store.kind,
            built_at=time.time(),
            segmenter=SEGMENTER,
        )
        return cls(
            manifest=manifest,
            documents={d.doc_id: d for d in docs},
            sentences=sentences,
            chunks=chunks,
            vectors=vectors,
            store=store,
            lexical=LexicalIndex.from_tokens(tokens),
            _derived=kept_derived,
        )

    def updated(
        self,
        embedder: Embedder,
        *,
        upserts: Iterable[Document] = (),
        deletes: Iterable[str] = (),
        seed_checksum: str | None = None,
    ) -> CorpusIndex:
        """A new index with ``upserts`` added or replaced and ``deletes`` removed.

        Unchanged documents keep their sentences, chunks and vectors, so only new text is
        split and embedded.
        """
        upserts = list(upserts)
        replaced = {d.doc_id for d in upserts} | set(deletes)
        kept = [d for d in self.documents.values() if d.doc_id not in replaced]
        reuse: dict[str, npt.NDArray[np.float32]] = {}
        same_model = self.manifest.model_id == embedder.model_id
        if same_model:
            reuse = {s.sentence_id: self.vectors[i] for i, s in enumerate(self.sentences)}
        # Kept documents keep their sentences, in order, first: their old positions let the
        # vector store be updated rather than rebuilt.
        kept_positions = np.array(
            [i for d in kept for i in self._doc_sentences.get(d.doc_id, [])], dtype=np.int64
        )
        return CorpusIndex.build(
            [*kept, *upserts],
            embedder,
            seed_checksum=seed_checksum or self.manifest.seed_checksum,
            reuse=reuse,
            segmented={
                d.doc_id: (self.sentences_of(d.doc_id), self.chunks_of(d.doc_id)) for d in kept
            },
            derived={d.doc_id: self._derived.get(d.doc_id, {}) for d in kept},
            previous=(self.store, kept_positions)
            if same_model and isinstance(self.store, FaissStore)
            else None,
        )

    @property
    def content_digest(self) -> str:
        """sha256 over the sorted (sentence_id, doc_id, start, end) rows of the sentences.

        Two indexes of the same documents, however they were built, have the same digest.
        """
        rows = sorted((s.sentence_id, s.doc_id, s.start, s.end) for s in self.sentences)
        return hashlib.sha256(msgspec.json.encode(rows)).hexdigest()

    # -- persistence -------------------------------------------------------------

    def save(self, directory: Path) -> Path:
        """Write a new snapshot under ``directory`` and make it current, atomically.

        A write that fails (a full disk, say) removes what it wrote and leaves the
        previous snapshot current; the error is raised.
        """
        snapshots = directory / "snapshots"
        snapshots.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        tmp = snapshots / f".tmp-{name}"
        pointer = directory / ".CURRENT.tmp"
        try:
            manifest = self._write_snapshot(tmp)
            final = snapshots / name
            tmp.rename(final)
            _fsync(snapshots)
            pointer.write_text(name)
            _fsync(pointer)
            os.replace(pointer, directory / "CURRENT")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(snapshots / name, ignore_errors=True)
            pointer.unlink(missing_ok=True)
            raise
        _fsync(directory)
        self.manifest = manifest
        _remove_all_but(snapshots, name)
        return final

    def _write_snapshot(self, tmp: Path) -> Manifest:
        """Write every file into ``tmp``, checksum each in the manifest, and fsync them."""
        tmp.mkdir()
        enc = msgspec.json.Encoder()
        (tmp / "documents.jsonl").write_bytes(
            b"".join(enc.encode(d) + b"\n" for d in self.documents.values())
        )
        (tmp / "sentences.json").write_bytes(enc.encode(self.sentences))
        (tmp / "chunks.json").write_bytes(enc.encode(self.chunks))
        buffer = io.BytesIO()
        np.save(buffer, self.vectors, allow_pickle=False)
        (tmp / "vectors.npy").write_bytes(buffer.getvalue())
        self.store.save(tmp / "vectors.faiss")
        self.lexical.save(tmp / "lexical")
        written = sorted(p for p in tmp.rglob("*") if p.is_file())
        files = {p.relative_to(tmp).as_posix(): _sha256(p) for p in written}
        manifest = msgspec.structs.replace(self.manifest, files=files)
        (tmp / "manifest.json").write_bytes(msgspec.json.format(enc.encode(manifest)))
        for path in [*written, tmp / "manifest.json"]:
            _fsync(path)
        _fsync(tmp / "lexical")
        _fsync(tmp)
        return manifest

    @classmethod
    def load(cls, directory: Path) -> CorpusIndex:
        """Load the current snapshot of ``directory``, checking every file's checksum."""
        try:
            name = (directory / "CURRENT").read_text().strip()
        except FileNotFoundError as exc:
            raise IndexMissingError(f"{directory}: no index here") from exc
        snap = directory / "snapshots" / name
        try:
            manifest = msgspec.json.decode((snap / "manifest.json").read_bytes(), type=Manifest)
        except (OSError, msgspec.DecodeError) as exc:
            try:
                version = msgspec.json.decode((snap / "manifest.json").read_bytes())
                found = version.get("format_version")
            except (OSError, msgspec.DecodeError, AttributeError):
                found = None
            if found is not None and found != FORMAT_VERSION:
                raise _incompatible(directory, found) from exc
            raise IndexFormatError(f"{directory}: snapshot {name} is corrupt: {exc}") from exc
        if manifest.format_version != FORMAT_VERSION:
            raise _incompatible(directory, manifest.format_version)
        try:
            missing = [f for f in _DATA_FILES if f not in manifest.files]
            if missing:
                raise IndexFormatError(f"{directory}: the manifest does not cover {missing[0]}")
            for file, expected in manifest.files.items():
                if _sha256(snap / file) != expected:
                    raise IndexFormatError(f"{directory}: {file} is corrupt (checksum mismatch)")
            documents = [
                msgspec.json.decode(line, type=Document)
                for line in (snap / "documents.jsonl").read_bytes().splitlines()
                if line
            ]
            sentences = msgspec.json.decode(
                (snap / "sentences.json").read_bytes(), type=list[Sentence]
            )
            chunks = msgspec.json.decode((snap / "chunks.json").read_bytes(), type=list[Chunk])
            vectors = np.load(snap / "vectors.npy", allow_pickle=False)
            store = FaissStore.load(snap / "vectors.faiss")
            lexical = LexicalIndex.load(snap / "lexical", len(sentences))
        except IndexFormatError:
            raise
        except (OSError, ValueError, RuntimeError, msgspec.DecodeError) as exc:
            raise IndexFormatError(f"{directory}: snapshot {name} is corrupt: {exc}") from exc
        if not (len(store) == len(sentences) == manifest.sentences == len(vectors)):
            raise IndexFormatError(f"{directory}: snapshot {name} is corrupt: counts disagree")
        return cls(manifest, {d.doc_id: d for d in documents}, sentences, chunks, vectors, store,
                   lexical)  # fmt: skip


def _tokens(sentences: list[Sentence]) -> list[list[str]]:
    return [tokenize(s.text) for s in sentences]


LEASE_TTL_S = 60.0


def hold_snapshots(directory: Path, holder: str, names: Iterable[str]) -> None:
    """Lease snapshots for a reader in another process, so that writes do not delete them.

    A read replica renews its lease (``DIR/leases/<holder>``) at every check of CURRENT;
    a lease not renewed for ``LEASE_TTL_S`` seconds no longer holds anything.
    """
    leases = directory / "leases"
    leases.mkdir(parents=True, exist_ok=True)
    tmp = leases / f".{holder}.tmp"
    tmp.write_text("\n".join(names))
    os.replace(tmp, leases / holder)


def release_snapshots(directory: Path, holder: str) -> None:
    """Drop a reader's lease."""
    (directory / "leases" / holder).unlink(missing_ok=True)


def _held(directory: Path) -> set[str]:
    """Snapshots that live leases hold; stale leases are removed."""
    held: set[str] = set()
    leases = directory / "leases"
    if not leases.is_dir():
        return held
    now = time.time()
    for lease in leases.iterdir():
        try:
            if now - lease.stat().st_mtime > LEASE_TTL_S:
                lease.unlink(missing_ok=True)
                continue
            held.update(lease.read_text().split())
        except OSError:
            continue
    return held


def _remove_all_but(snapshots: Path, keep: str) -> None:
    """Delete old snapshots no reader holds, and the leftovers of interrupted writes."""
    held = _held(snapshots.parent)
    for old in snapshots.iterdir():
        if old.name != keep and old.name not in held:
            shutil.rmtree(old, ignore_errors=True)


def _incompatible(directory: Path, found: object) -> IndexFormatError:
    return IndexFormatError(
        f"{directory}: index format {found}, but this version reads format {FORMAT_VERSION}; "
        f"rebuild it with `citeqa index build --out {directory}` or remove the directory"
    )


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_or_build(
    directory: Path,
    seed: Sequence[Document],
    embedder: Embedder,
    *,
    progress: bool = False,
    sync_seed: bool = True,
) -> CorpusIndex:
    """Load the index in ``directory``, seeding it from ``seed`` when needed.

    No index yet: build one from ``seed``. With ``sync_seed``, a seed that changed since
    the index was seeded has its documents added or replaced, and documents added
    through the API stay. The embedding model changed: everything is embedded again.
    A corrupt or incompatible index raises :class:`IndexFormatError`, never silently
    loses data.
    """
    seed_checksum = corpus_checksum(seed)
    try:
        index = CorpusIndex.load(directory)
    except IndexMissingError:
        log.info("building index in %s", directory)
        index = CorpusIndex.build(seed, embedder, progress=progress)
        index.save(directory)
        return index
    _remove_all_but(directory / "snapshots", (directory / "CURRENT").read_text().strip())
    if index.manifest.segmenter != SEGMENTER or index.manifest.dim != embedder.dim:
        # Sentences split another way, or vectors of another size: nothing can be kept.
        log.info("rebuilding index: segmenter or embedding size changed")
        index = CorpusIndex.build(
            list(index.documents.values()),
            embedder,
            progress=progress,
            seed_checksum=index.manifest.seed_checksum,
        )
        index.save(directory)
    model_changed = index.manifest.model_id != embedder.model_id
    seed_changed = sync_seed and index.manifest.seed_checksum != seed_checksum
    if model_changed and not seed_changed:
        log.info("updating index: model changed")
        index = index.updated(embedder)
        index.save(directory)
    elif seed_changed:
        log.info("updating index: seed corpus changed")
        index = index.updated(embedder, upserts=seed, seed_checksum=seed_checksum)
        index.save(directory)
    return index
