"""Building, updating, persisting and loading the corpus index.

The index is a list of immutable segments (``index/segment.py``) plus tombstones: a
write adds a segment of its own documents and tombstones the replaced ones, a merge folds
small adjacent segments together, and every change produces a new snapshot. A reader holds
one ``CorpusIndex`` for as long as it likes. Layout of an index directory::

    DIR/CURRENT                    name of the live snapshot, replaced atomically
    DIR/snapshots/<name>/manifest.json
                                   the segments, their tombstones, the sha256 of every file
    DIR/segments/<name>/           documents.jsonl, sentences.json, chunks.json, vectors.npy,
                                   vectors.faiss, terms.json, postings.npz (BM25)

A segment is written to ``segments/.tmp-<name>``, fsynced and renamed into place; a
snapshot likewise, and only then is it named in ``CURRENT``, so a crash at any point
leaves the previous snapshot live. Segments that no kept snapshot names are removed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import msgspec
import numpy as np
import numpy.typing as npt

from index.chunk import Chunk, chunk_sentences
from index.documents import Document, corpus_checksum
from index.embed import Embedder
from index.lexical import tokenize
from index.search import COMPRESS_THRESHOLD, HNSW_THRESHOLD, FaissStore, VectorStore
from index.segment import (
    Bm25,
    FanOutStore,
    Segment,
    StackedVectors,
    fsync,
    new_name,
    read_documents_jsonl,
)
from index.split import SEGMENTER, Sentence
from index.stages import sentences_of_rows, split_batch

__all__ = [
    "FORMAT_VERSION",
    "MAX_SEGMENTS",
    "CorpusIndex",
    "IndexFormatError",
    "IndexMissingError",
    "Manifest",
    "SegmentEntry",
    "hold_snapshots",
    "load_or_build",
    "release_snapshots",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

FORMAT_VERSION = 3
MAX_SEGMENTS = 10  # past this many, adjacent small segments are merged
MERGE_WIDTH = 4  # how many adjacent segments one merge folds together
MAX_DEAD_SHARE = 0.5  # a segment with more tombstoned sentences than this is rewritten


class IndexFormatError(Exception):
    """The directory holds a corrupt index, or one of another format."""


class IndexMissingError(IndexFormatError):
    """The directory holds no index yet."""


class OutdatedIndexError(IndexFormatError):
    """The directory holds an index of an older format; its documents can be indexed again."""

    def __init__(self, message: str, documents: list[Document], seed_checksum: str) -> None:
        super().__init__(message)
        self.documents = documents
        self.seed_checksum = seed_checksum


class SegmentEntry(msgspec.Struct, frozen=True):
    """One segment of a snapshot: its size, its tombstones, and the checksum of each file."""

    name: str
    documents: int
    sentences: int
    deleted: list[str] = msgspec.field(default_factory=list)  # doc_ids tombstoned in it
    files: dict[str, str] = msgspec.field(default_factory=dict)


class Manifest(msgspec.Struct, frozen=True):
    """What a snapshot holds, what built it, and its segments."""

    format_version: int
    model_id: str
    dim: int
    corpus_checksum: str
    seed_checksum: str  # of the configured corpus this index was last seeded from
    documents: int  # live ones
    sentences: int
    chunks: int
    vector_index: str  # how the segments are searched: "flat", "hnsw", "ivfpq" or a mix
    built_at: float
    segmenter: str = SEGMENTER  # what split the sentences (index/split.py)
    segments: list[SegmentEntry] = msgspec.field(default_factory=list)


@dataclass
class CorpusIndex:
    """Segments and tombstones, seen as one corpus.

    ``documents``, ``sentences``, ``chunks`` and ``vectors`` hold the live rows of every
    segment in segment order; a sentence's position in ``sentences`` is what ``store``
    (FAISS, fanned out over the segments) and ``lexical`` (BM25 with corpus-wide
    statistics) return.
    """

    manifest: Manifest
    segments: list[Segment]
    deleted: dict[str, frozenset[str]] = field(default_factory=dict)  # segment -> doc_ids
    # Values derived from one document's sentences (BM25 tokens, term counts, ...), kept
    # across writes that leave the document unchanged.
    _derived: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    # What :meth:`derived_total` needs from the index this one was written from: its
    # totals, and the derived values of the documents the write removed and added.
    _since: tuple[dict[str, Counter[str]], dict[str, dict[str, Any]], frozenset[str]] | None = (
        field(default=None, repr=False)
    )
    documents: dict[str, Document] = field(init=False, repr=False)
    sentences: list[Sentence] = field(init=False, repr=False)
    chunks: list[Chunk] = field(init=False, repr=False)
    vectors: StackedVectors = field(init=False, repr=False)
    store: VectorStore = field(init=False, repr=False)
    lexical: Bm25 = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.documents, self.sentences, self.chunks = {}, [], []
        self._home: dict[str, str] = {}  # doc_id -> the segment that holds it live
        self._totals: dict[str, Counter[str]] = {}
        self._doc_sentences: dict[str, list[int]] = {}
        self._doc_chunks: dict[str, list[int]] = {}
        live_rows, stores, parts = [], [], []
        for seg in self.segments:
            gone = self.deleted.get(seg.name, frozenset())
            positions = np.full(len(seg.sentences), -1, dtype=np.int64)
            for doc in seg.documents:  # a document's rows are adjacent: copied a range at a time
                if doc.doc_id in gone:
                    continue
                self.documents[doc.doc_id] = doc
                self._home[doc.doc_id] = seg.name
                first, end = seg.sentence_rows.get(doc.doc_id, (0, 0))
                at = len(self.sentences)
                self.sentences.extend(seg.sentences[first:end])
                self._doc_sentences[doc.doc_id] = list(range(at, at + end - first))
                positions[first:end] = np.arange(at, at + end - first)
                first, end = seg.chunk_rows.get(doc.doc_id, (0, 0))
                at = len(self.chunks)
                self.chunks.extend(seg.chunks[first:end])
                self._doc_chunks[doc.doc_id] = list(range(at, at + end - first))
            live_rows.append(np.nonzero(positions >= 0)[0] if gone else np.arange(len(positions)))
            stores.append(FaissStore(seg.dense, positions, seg.vectors))
            parts.append((seg.postings, positions))
        self.vectors = StackedVectors([seg.vectors for seg in self.segments], live_rows,
                                      self.manifest.dim)  # fmt: skip
        self.store = FanOutStore(stores)
        self.lexical = Bm25(parts, len(self.sentences))

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

    def derived_if_known(self, doc_id: str, name: str) -> Any | None:
        """What :meth:`derived` holds as ``name`` for the document; None if nothing yet."""
        return self._derived.get(doc_id, {}).get(name)

    def derived_total(
        self, name: str, compute: Callable[[list[Sentence]], Counter[str]]
    ) -> Counter[str]:
        """The sum over live documents of a per-document :meth:`derived` count.

        After a write it is the previous index's total, less the removed documents'
        counts, plus the added ones': a write costs its own documents.
        """
        if name not in self._totals:
            totals, removed, added = self._since or ({}, {}, frozenset())
            if name in totals and all(name in values for values in removed.values()):
                total = totals[name].copy()
                for values in removed.values():
                    total.subtract(values[name])
                for doc_id in added:
                    total.update(self.derived(doc_id, name, compute))
                self._totals[name] = +total  # drops the terms no document holds any more
            else:
                total = Counter()
                for doc_id in self.documents:
                    total.update(self.derived(doc_id, name, compute))
                self._totals[name] = total
        return self._totals[name]

    def chunk_of(self, sentence_index: int) -> Chunk:
        """The first chunk that holds the sentence."""
        sentence = self.sentences[sentence_index]
        pos = self._doc_sentences[sentence.doc_id].index(sentence_index)
        for i in self._doc_chunks[sentence.doc_id]:
            chunk = self.chunks[i]
            if chunk.first <= pos <= chunk.last:
                return chunk
        raise KeyError(sentence.sentence_id)  # pragma: no cover - chunks cover every sentence

    @property
    def tombstones(self) -> int:
        """Sentences still stored in segments but deleted or replaced."""
        return sum(len(s.sentences) for s in self.segments) - len(self.sentences)

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
        split: dict[str, tuple[list[Sentence], list[list[str]]]] | None = None,
        hnsw_threshold: int = HNSW_THRESHOLD,
        compress_threshold: int = COMPRESS_THRESHOLD,
    ) -> CorpusIndex:
        """An index of ``docs`` in one segment.

        Vectors in ``reuse`` (by sentence id) are not embedded again. ``split`` holds
        sentences and tokens already made by the split stage (``index/stages.py``); the
        other documents go through that stage here.
        """
        segment, derived = _segment_of(
            docs, embedder, reuse=reuse or {}, split=split or {}, progress=progress,
            hnsw_threshold=hnsw_threshold, compress_threshold=compress_threshold,
        )  # fmt: skip
        return _assembled([segment], {}, derived, embedder.model_id, embedder.dim, seed_checksum)

    def updated(
        self,
        embedder: Embedder,
        *,
        upserts: Iterable[Document] = (),
        deletes: Iterable[str] = (),
        seed_checksum: str | None = None,
        hnsw_threshold: int = HNSW_THRESHOLD,
        compress_threshold: int = COMPRESS_THRESHOLD,
    ) -> CorpusIndex:
        """A new index with ``upserts`` added or replaced and ``deletes`` removed.

        The upserts go into one new segment, and the documents they replace or that are
        deleted are tombstoned where they live: only new text is split and embedded, and
        no other segment is touched. Another embedding model rebuilds everything.
        """
        upserts = list({d.doc_id: d for d in upserts}.values())  # the last of a doc_id wins
        seed_checksum = seed_checksum or self.manifest.seed_checksum
        gone = ({d.doc_id for d in upserts} | set(deletes)) & set(self.documents)
        if self.manifest.model_id != embedder.model_id:
            kept = [d for d in self.documents.values() if d.doc_id not in gone]
            return CorpusIndex.build([*kept, *upserts], embedder, seed_checksum=seed_checksum,
                                     hnsw_threshold=hnsw_threshold,
                                     compress_threshold=compress_threshold)  # fmt: skip
        reuse = {
            self.sentences[i].sentence_id: self.vectors[i]
            for d in upserts
            for i in self.positions_of(d.doc_id)
        }
        deleted = dict(self.deleted)
        for doc_id in gone:
            home = self._home[doc_id]
            deleted[home] = deleted.get(home, frozenset()) | {doc_id}
        segments = [
            s
            for s in self.segments
            if any(d.doc_id not in deleted.get(s.name, ()) for d in s.documents)
        ]
        names = {s.name for s in segments}
        deleted = {name: ids for name, ids in deleted.items() if name in names}
        derived = {k: v for k, v in self._derived.items() if k not in gone}
        if upserts:
            segment, fresh = _segment_of(upserts, embedder, reuse=reuse, split={},
                                         hnsw_threshold=hnsw_threshold,
                                         compress_threshold=compress_threshold)  # fmt: skip
            segments.append(segment)
            derived.update(fresh)
        index = _assembled(
            segments, deleted, derived, embedder.model_id, embedder.dim, seed_checksum
        )
        removed = {doc_id: self._derived.get(doc_id, {}) for doc_id in gone}
        index._since = (self._totals, removed, frozenset(d.doc_id for d in upserts))
        return index

    # -- merging -----------------------------------------------------------------

    def merge_plan(self, max_segments: int = MAX_SEGMENTS) -> list[str]:
        """Names of the segments a merge should fold together; empty when none is due.

        Past ``max_segments``, the run of ``MERGE_WIDTH`` adjacent segments with the fewest
        live sentences; a segment mostly tombstoned is rewritten on its own. Adjacent runs
        keep the corpus in order, so a merge changes no answer and no prompt.
        """
        live = []
        for seg in self.segments:
            rows = seg.sentence_rows
            dead = sum(rows[d][1] - rows[d][0] for d in self.deleted.get(seg.name, ()) if d in rows)
            if dead > MAX_DEAD_SHARE * max(len(seg.sentences), 1):
                return [seg.name]
            live.append(len(seg.sentences) - dead)
        if len(self.segments) <= max_segments:
            return []
        width = min(MERGE_WIDTH, len(self.segments))
        start = min(range(len(live) - width + 1), key=lambda i: sum(live[i : i + width]))
        return [s.name for s in self.segments[start : start + width]]

    def merged_segment(
        self,
        names: Sequence[str],
        *,
        hnsw_threshold: int = HNSW_THRESHOLD,
        compress_threshold: int = COMPRESS_THRESHOLD,
    ) -> Segment:
        """One segment with the live documents of the named segments; nothing is embedded."""
        docs: list[Document] = []
        rows: list[int] = []
        chunks: list[Chunk] = []
        tokens: list[list[str]] = []
        for seg in self.segments:
            if seg.name not in names:
                continue
            gone = self.deleted.get(seg.name, frozenset())
            for doc in seg.documents:
                if doc.doc_id in gone:
                    continue
                docs.append(doc)
                rows.extend(self.positions_of(doc.doc_id))
                chunks.extend(self.chunks_of(doc.doc_id))
                tokens.extend(self.derived(doc.doc_id, "tokens", _tokens))
        return Segment.build(docs, [self.sentences[i] for i in rows], chunks, tokens,
                             self.vectors[rows], hnsw_threshold=hnsw_threshold,
                             compress_threshold=compress_threshold)  # fmt: skip

    def with_merged(self, merged: Segment, names: Sequence[str]) -> CorpusIndex | None:
        """The index with the named segments replaced by ``merged``.

        ``merged`` may have been made from an older index: its documents replaced or
        deleted since are tombstoned in it. None when every named segment is gone.
        """
        at = [i for i, s in enumerate(self.segments) if s.name in names]
        if not at or at != list(range(at[0], at[0] + len(at))):
            return None
        live = {doc_id for doc_id, home in self._home.items() if home in names}
        gone = frozenset(d.doc_id for d in merged.documents if d.doc_id not in live)
        segments = [*self.segments[: at[0]], merged, *self.segments[at[-1] + 1 :]]
        deleted = {k: v for k, v in self.deleted.items() if k not in names}
        if gone:
            deleted[merged.name] = gone
        m = self.manifest
        index = _assembled(segments, deleted, dict(self._derived), m.model_id, m.dim,
                           m.seed_checksum)  # fmt: skip
        index._totals = self._totals  # the same live documents
        return index

    @property
    def content_digest(self) -> str:
        """sha256 over the sorted (sentence_id, doc_id, start, end) rows of the sentences.

        Two indexes of the same documents, however they were built, have the same digest.
        """
        rows = sorted((s.sentence_id, s.doc_id, s.start, s.end) for s in self.sentences)
        return hashlib.sha256(msgspec.json.encode(rows)).hexdigest()

    # -- persistence -------------------------------------------------------------

    def save(self, directory: Path) -> Path:
        """Write the new segments and a snapshot under ``directory``; make it current.

        Segments already on disk are not written again, so a write costs its own
        segment and a manifest. A write that fails (a full disk, say) removes what it
        wrote and leaves the previous snapshot current; the error is raised.
        """
        snapshots, segments = directory / "snapshots", directory / "segments"
        snapshots.mkdir(parents=True, exist_ok=True)
        segments.mkdir(parents=True, exist_ok=True)
        name = new_name()
        tmp = snapshots / f".tmp-{name}"
        pointer = directory / ".CURRENT.tmp"
        fresh = [s for s in self.segments if not (segments / s.name).is_dir()]
        try:
            for seg in self.segments:
                seg.write(segments)
            manifest = msgspec.structs.replace(
                self.manifest,
                segments=[
                    SegmentEntry(
                        s.name,
                        len(s.documents),
                        len(s.sentences),
                        sorted(self.deleted.get(s.name, ())),
                        s.files,
                    )
                    for s in self.segments
                ],
            )
            tmp.mkdir()
            (tmp / "manifest.json").write_bytes(msgspec.json.format(msgspec.json.encode(manifest)))
            fsync(tmp / "manifest.json")
            fsync(tmp)
            final = snapshots / name
            tmp.rename(final)
            fsync(snapshots)
            pointer.write_text(name)
            fsync(pointer)
            os.replace(pointer, directory / "CURRENT")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(snapshots / name, ignore_errors=True)
            for seg in fresh:
                shutil.rmtree(segments / seg.name, ignore_errors=True)
            pointer.unlink(missing_ok=True)
            raise
        fsync(directory)
        self.manifest = manifest
        _remove_all_but(directory, name)
        return final

    @classmethod
    def load(cls, directory: Path, *, previous: CorpusIndex | None = None) -> CorpusIndex:
        """Load the current snapshot of ``directory``, checking every file's checksum.

        Segments never change, so those of ``previous`` (the index a replica serves, say)
        that the snapshot names with the same checksums are taken as they are, with their
        documents' derived values, instead of being read and derived again.
        """
        try:
            name = (directory / "CURRENT").read_text().strip()
        except FileNotFoundError as exc:
            raise IndexMissingError(f"{directory}: no index here") from exc
        snap = directory / "snapshots" / name
        try:
            raw = (snap / "manifest.json").read_bytes()
        except OSError as exc:
            raise IndexFormatError(f"{directory}: snapshot {name} is corrupt: {exc}") from exc
        try:
            manifest = msgspec.json.decode(raw, type=Manifest)
        except msgspec.DecodeError as exc:
            try:
                found = msgspec.json.decode(raw).get("format_version")
            except (msgspec.DecodeError, AttributeError):
                found = None
            if found is not None and found != FORMAT_VERSION:
                raise _incompatible(directory, snap, found) from exc
            raise IndexFormatError(f"{directory}: snapshot {name} is corrupt: {exc}") from exc
        if manifest.format_version != FORMAT_VERSION:
            raise _incompatible(directory, snap, manifest.format_version)
        loaded = {seg.name: seg for seg in previous.segments} if previous else {}
        try:
            segments = [
                seg
                if (seg := loaded.get(entry.name)) is not None and seg.files == entry.files
                else Segment.read(directory / "segments" / entry.name, entry.files)
                for entry in manifest.segments
            ]
        except (OSError, ValueError, RuntimeError, msgspec.DecodeError) as exc:
            raise IndexFormatError(f"{directory}: snapshot {name} is corrupt: {exc}") from exc
        deleted = {e.name: frozenset(e.deleted) for e in manifest.segments if e.deleted}
        kept = {seg.name for seg in segments if loaded.get(seg.name) is seg}
        derived = {} if previous is None else {
            doc_id: values
            for doc_id, values in previous._derived.items()
            if previous._home.get(doc_id) in kept
        }  # fmt: skip
        index = cls(manifest, segments, deleted, derived)
        if len(index.sentences) != manifest.sentences or len(index.documents) != manifest.documents:
            raise IndexFormatError(f"{directory}: snapshot {name} is corrupt: counts disagree")
        return index


def _segment_of(
    docs: Sequence[Document],
    embedder: Embedder,
    *,
    reuse: dict[str, npt.NDArray[np.float32]],
    split: dict[str, tuple[list[Sentence], list[list[str]]]],
    progress: bool = False,
    hnsw_threshold: int = HNSW_THRESHOLD,
    compress_threshold: int = COMPRESS_THRESHOLD,
) -> tuple[Segment, dict[str, dict[str, Any]]]:
    """A segment of ``docs`` (split, chunked, embedded), and each document's derived values."""
    fresh = [d for d in docs if d.doc_id not in split]
    split = {
        **split,
        **sentences_of_rows(
            split_batch({"doc_id": [d.doc_id for d in fresh], "text": [d.text for d in fresh]})
        ),
    }
    sentences: list[Sentence] = []
    chunks: list[Chunk] = []
    tokens: list[list[str]] = []
    derived: dict[str, dict[str, Any]] = {}
    for doc in docs:
        doc_sentences, doc_tokens = split.get(doc.doc_id, ([], []))
        sentences.extend(doc_sentences)
        chunks.extend(chunk_sentences(doc.doc_id, doc_sentences))
        tokens.extend(doc_tokens)
        derived[doc.doc_id] = {"tokens": doc_tokens}
    vectors = np.zeros((len(sentences), embedder.dim), dtype=np.float32)
    missing = []
    for i, s in enumerate(sentences):
        if s.sentence_id in reuse:
            vectors[i] = reuse[s.sentence_id]
        else:
            missing.append(i)
    if missing:  # only new text is embedded
        vectors[missing] = embedder.encode([sentences[i].text for i in missing], progress=progress)
    segment = Segment.build(docs, sentences, chunks, tokens, vectors, hnsw_threshold=hnsw_threshold,
                            compress_threshold=compress_threshold)  # fmt: skip
    return segment, derived


def _assembled(
    segments: list[Segment],
    deleted: dict[str, frozenset[str]],
    derived: dict[str, dict[str, Any]],
    model_id: str,
    dim: int,
    seed_checksum: str | None,
) -> CorpusIndex:
    """The index of these segments, with a manifest that counts what it holds."""
    index = CorpusIndex(Manifest(FORMAT_VERSION, model_id, dim, "", "", 0, 0, 0, "", 0.0),
                        segments, deleted, derived)  # fmt: skip
    checksum = corpus_checksum(index.documents.values())
    index.manifest = Manifest(
        format_version=FORMAT_VERSION,
        model_id=model_id,
        dim=dim,
        corpus_checksum=checksum,
        seed_checksum=seed_checksum if seed_checksum is not None else checksum,
        documents=len(index.documents),
        sentences=len(index.sentences),
        chunks=len(index.chunks),
        vector_index=index.store.kind,
        built_at=time.time(),
    )
    return index


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


def _remove_all_but(directory: Path, keep: str) -> None:
    """Delete old snapshots no reader holds, and segments no kept snapshot names.

    Leftovers of interrupted writes go too.
    """
    snapshots, segments = directory / "snapshots", directory / "segments"
    held = _held(directory)
    named: set[str] = set()
    for snap in snapshots.iterdir():
        if snap.name != keep and snap.name not in held:
            shutil.rmtree(snap, ignore_errors=True)
            continue
        try:
            manifest = msgspec.json.decode((snap / "manifest.json").read_bytes(), type=Manifest)
        except (OSError, msgspec.DecodeError):
            continue  # another format or unreadable: it names no segment of ours
        named.update(entry.name for entry in manifest.segments)
    if segments.is_dir():
        for seg in segments.iterdir():
            if seg.name not in named:
                shutil.rmtree(seg, ignore_errors=True)


def _incompatible(directory: Path, snap: Path, found: object) -> IndexFormatError:
    message = (
        f"{directory}: index format {found}, but this version reads format {FORMAT_VERSION}; "
        f"rebuild it with `citeqa index build --out {directory}` or remove the directory"
    )
    try:  # format 2 kept every document in the snapshot: they can be indexed again
        documents = read_documents_jsonl(snap / "documents.jsonl")
        seed = msgspec.json.decode((snap / "manifest.json").read_bytes())["seed_checksum"]
    except (OSError, msgspec.DecodeError, KeyError, TypeError):
        return IndexFormatError(message)
    return OutdatedIndexError(message, documents, str(seed))


def load_or_build(
    directory: Path,
    seed: Sequence[Document],
    embedder: Embedder,
    *,
    progress: bool = False,
    sync_seed: bool = True,
    compress_threshold: int = COMPRESS_THRESHOLD,
) -> CorpusIndex:
    """Load the index in ``directory``, seeding it from ``seed`` when needed.

    No index yet: build one from ``seed``; a build of ``compress_threshold`` sentences or
    more keeps compressed codes in memory (``index/search.py``). With ``sync_seed``, a
    seed that changed since the index was seeded has its documents added or replaced, and
    documents added through the API stay. The embedding model changed: everything is
    embedded again.
    A corrupt or incompatible index raises :class:`IndexFormatError`, never silently
    loses data.
    """
    seed_checksum = corpus_checksum(seed)
    try:
        index = CorpusIndex.load(directory)
    except IndexMissingError:
        log.info("building index in %s", directory)
        index = CorpusIndex.build(
            seed, embedder, progress=progress, compress_threshold=compress_threshold
        )
        index.save(directory)
        return index
    except OutdatedIndexError as old:
        log.info("indexing the %d documents of an older index format again", len(old.documents))
        index = CorpusIndex.build(
            old.documents, embedder, progress=progress, seed_checksum=old.seed_checksum,
            compress_threshold=compress_threshold,
        )  # fmt: skip
        index.save(directory)
    _remove_all_but(directory, (directory / "CURRENT").read_text().strip())
    if index.manifest.segmenter != SEGMENTER or index.manifest.dim != embedder.dim:
        # Sentences split another way, or vectors of another size: nothing can be kept.
        log.info("rebuilding index: segmenter or embedding size changed")
        index = CorpusIndex.build(
            list(index.documents.values()),
            embedder,
            progress=progress,
            seed_checksum=index.manifest.seed_checksum,
            compress_threshold=compress_threshold,
        )
        index.save(directory)
    model_changed = index.manifest.model_id != embedder.model_id
    seed_changed = sync_seed and index.manifest.seed_checksum != seed_checksum
    if model_changed and not seed_changed:
        log.info("rebuilding index: embedding model changed")
        index = index.updated(
            embedder, compress_threshold=compress_threshold
        )  # another model: everything is embedded again
        index.save(directory)
    elif seed_changed:
        log.info("updating index: seed corpus changed")
        index = index.updated(embedder, upserts=seed, seed_checksum=seed_checksum)
        index.save(directory)
    return index
