"""Writing the corpus index: build, update (add, replace, delete), and merge segments.

Every change makes a new ``CorpusIndex`` (``index/corpus.py``) and leaves the old one as
it was: a write adds a segment of its own documents and tombstones the replaced ones, a
merge folds small adjacent segments together. ``load_or_build`` opens a directory,
seeding or migrating it; ``index/snapshots.py`` does the reading and writing of files.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from index.chunk import Chunk, chunk_sentences
from index.corpus import FORMAT_VERSION, CorpusIndex, Manifest
from index.documents import Document, corpus_checksum
from index.embed import Embedder
from index.search import COMPRESS_THRESHOLD, HNSW_THRESHOLD
from index.segment import Segment
from index.snapshots import (
    IndexMissingError,
    OutdatedIndexError,
    load_snapshot,
    remove_unused,
    save_snapshot,
)
from index.split import SPLITTER, Sentence
from index.stages import Batch, sentences_of_rows, split_batch

__all__ = [
    "MAX_SEGMENTS",
    "assemble",
    "build_index",
    "load_or_build",
    "merge_plan",
    "merged_segment",
    "update_index",
    "with_merged",
]

log = logging.getLogger(__name__)

MAX_SEGMENTS = 10  # past this many, adjacent small segments are merged
MERGE_WIDTH = 4  # how many adjacent segments one merge folds together
MAX_DEAD_SHARE = 0.5  # a segment with more tombstoned sentences than this is rewritten


def build_index(
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


def update_index(
    index: CorpusIndex,
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
    seed_checksum = seed_checksum or index.manifest.seed_checksum
    gone = ({d.doc_id for d in upserts} | set(deletes)) & set(index.documents)
    if index.manifest.model_id != embedder.model_id:
        kept = [d for d in index.documents.values() if d.doc_id not in gone]
        return build_index([*kept, *upserts], embedder, seed_checksum=seed_checksum,
                                 hnsw_threshold=hnsw_threshold,
                                 compress_threshold=compress_threshold)  # fmt: skip
    reuse = {
        index.sentences[i].sentence_id: index.vectors[i]
        for d in upserts
        for i in index.positions_of(d.doc_id)
    }
    deleted = dict(index.deleted)
    for doc_id in gone:
        home = index.home[doc_id]
        deleted[home] = deleted.get(home, frozenset()) | {doc_id}
    segments = [
        s
        for s in index.segments
        if any(d.doc_id not in deleted.get(s.name, ()) for d in s.documents)
    ]
    names = {s.name for s in segments}
    deleted = {name: ids for name, ids in deleted.items() if name in names}
    derived = {k: v for k, v in index.derived_values.items() if k not in gone}
    if upserts:
        segment, fresh = _segment_of(upserts, embedder, reuse=reuse, split={},
                                     hnsw_threshold=hnsw_threshold,
                                     compress_threshold=compress_threshold)  # fmt: skip
        segments.append(segment)
        derived.update(fresh)
    removed = {doc_id: index.derived_values.get(doc_id, {}) for doc_id in gone}
    since = (index.totals, removed, frozenset(d.doc_id for d in upserts))
    return _assembled(segments, deleted, derived, embedder.model_id, embedder.dim,
                      seed_checksum, since=since)  # fmt: skip


def merge_plan(index: CorpusIndex, max_segments: int = MAX_SEGMENTS) -> list[str]:
    """Names of the segments a merge should fold together; empty when none is due.

    Past ``max_segments``, the run of ``MERGE_WIDTH`` adjacent segments with the fewest
    live sentences; a segment mostly tombstoned is rewritten on its own. Adjacent runs
    keep the corpus in order, so a merge changes no answer and no prompt.
    """
    live = []
    for seg in index.segments:
        rows = seg.sentence_rows
        dead = sum(rows[d][1] - rows[d][0] for d in index.deleted.get(seg.name, ()) if d in rows)
        if dead > MAX_DEAD_SHARE * max(len(seg.sentences), 1):
            return [seg.name]
        live.append(len(seg.sentences) - dead)
    if len(index.segments) <= max_segments:
        return []
    width = min(MERGE_WIDTH, len(index.segments))
    start = min(range(len(live) - width + 1), key=lambda i: sum(live[i : i + width]))
    return [s.name for s in index.segments[start : start + width]]


def merged_segment(
    index: CorpusIndex,
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
    for seg in index.segments:
        if seg.name not in names:
            continue
        gone = index.deleted.get(seg.name, frozenset())
        for doc in seg.documents:
            if doc.doc_id in gone:
                continue
            docs.append(doc)
            rows.extend(index.positions_of(doc.doc_id))
            chunks.extend(index.chunks_of(doc.doc_id))
            tokens.extend(index.tokens_of(doc.doc_id))
    return Segment.build(docs, [index.sentences[i] for i in rows], chunks, tokens,
                         index.vectors[rows], hnsw_threshold=hnsw_threshold,
                         compress_threshold=compress_threshold)  # fmt: skip


def with_merged(index: CorpusIndex, merged: Segment, names: Sequence[str]) -> CorpusIndex | None:
    """The index with the named segments replaced by ``merged``.

    ``merged`` may have been made from an older index: its documents replaced or
    deleted since are tombstoned in it. None when every named segment is gone.
    """
    at = [i for i, s in enumerate(index.segments) if s.name in names]
    if not at or at != list(range(at[0], at[0] + len(at))):
        return None
    live = {doc_id for doc_id, home in index.home.items() if home in names}
    gone = frozenset(d.doc_id for d in merged.documents if d.doc_id not in live)
    segments = [*index.segments[: at[0]], merged, *index.segments[at[-1] + 1 :]]
    deleted = {k: v for k, v in index.deleted.items() if k not in names}
    if gone:
        deleted[merged.name] = gone
    m = index.manifest
    return _assembled(
        segments,
        deleted,
        dict(index.derived_values),
        m.model_id,
        m.dim,
        m.seed_checksum,
        totals=index.totals,
    )  # the same live documents


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
    *,
    since: tuple[dict[str, Counter[str]], dict[str, dict[str, Any]], frozenset[str]] | None = None,
    totals: dict[str, Counter[str]] | None = None,
) -> CorpusIndex:
    """The index of these segments, with a manifest that counts what it holds."""
    index = CorpusIndex(Manifest(FORMAT_VERSION, model_id, dim, "", "", 0, 0, 0, "", 0.0),
                        segments, deleted, derived, since, totals or {})  # fmt: skip
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
        index = load_snapshot(directory)
    except IndexMissingError:
        log.info("building index in %s", directory)
        index = build_index(
            seed, embedder, progress=progress, compress_threshold=compress_threshold
        )
        save_snapshot(index, directory)
        return index
    except OutdatedIndexError as old:
        log.info("indexing the %d documents of an older index format again", len(old.documents))
        index = build_index(
            old.documents, embedder, progress=progress, seed_checksum=old.seed_checksum,
            compress_threshold=compress_threshold,
        )  # fmt: skip
        save_snapshot(index, directory)
    remove_unused(directory)
    if index.manifest.segmenter != SPLITTER or index.manifest.dim != embedder.dim:
        # Sentences split another way, or vectors of another size: nothing can be kept.
        log.info("rebuilding index: sentence splitter or embedding size changed")
        index = build_index(
            list(index.documents.values()),
            embedder,
            progress=progress,
            seed_checksum=index.manifest.seed_checksum,
            compress_threshold=compress_threshold,
        )
        save_snapshot(index, directory)
    model_changed = index.manifest.model_id != embedder.model_id
    seed_changed = sync_seed and index.manifest.seed_checksum != seed_checksum
    if model_changed and not seed_changed:
        log.info("rebuilding index: embedding model changed")
        index = update_index(
            index, embedder, compress_threshold=compress_threshold
        )  # another model: everything is embedded again
        save_snapshot(index, directory)
    elif seed_changed:
        log.info("updating index: seed corpus changed")
        index = update_index(index, embedder, upserts=seed, seed_checksum=seed_checksum)
        save_snapshot(index, directory)
    return index


def assemble(
    documents: Sequence[Document], rows: Batch, embedder: Embedder, **build: Any
) -> CorpusIndex:
    """The index of ``documents`` from their embedded sentence rows (any order of batches).

    ``embedder`` only names the model and its size here; every vector comes from the rows.
    """
    grouped = sentences_of_rows(rows)
    vectors = {
        sid: np.asarray(v, dtype=np.float32)
        for sid, v in zip(rows["sentence_id"], rows["vector"], strict=True)
    }
    return build_index(
        documents,
        embedder,
        reuse=vectors,
        split={doc_id: grouped.get(doc_id, ([], [])) for doc_id in (d.doc_id for d in documents)},
        **build,
    )
