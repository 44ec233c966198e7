"""The index directory: the only reader and writer of ``CURRENT``, manifests and leases.

Layout::

    DIR/CURRENT                    name of the live snapshot, replaced atomically
    DIR/snapshots/<name>/manifest.json
                                   the segments, their tombstones, the sha256 of every file
    DIR/segments/<name>/           documents.jsonl, sentences.json, chunks.json, vectors.npy,
                                   vectors.faiss, terms.json, postings.npz (BM25)
    DIR/leases/<holder>            snapshots a reader in another process still uses

A segment is written to ``segments/.tmp-<name>``, fsynced and renamed into place; a
snapshot likewise, and only then is it named in ``CURRENT``, so a crash at any point
leaves the previous snapshot live. Segments that no kept snapshot names are removed.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

import msgspec

from index.corpus import FORMAT_VERSION, CorpusIndex, Manifest, SegmentEntry
from index.documents import Document, read_documents_jsonl
from index.files import fsync
from index.segment import Segment, new_name

__all__ = [
    "IndexFormatError",
    "IndexMissingError",
    "OutdatedIndexError",
    "current_snapshot",
    "hold_snapshots",
    "load_snapshot",
    "release_snapshots",
    "remove_unused",
    "save_snapshot",
]


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


def current_snapshot(directory: Path) -> str | None:
    """The name of the live snapshot in ``directory``; None when it holds no index yet.

    Any other failure to read ``CURRENT`` (permissions, say) is raised, never taken for
    an empty directory.
    """
    try:
        return (directory / "CURRENT").read_text().strip()
    except FileNotFoundError:
        return None


def save_snapshot(index: CorpusIndex, directory: Path) -> Path:
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
    fresh = [s for s in index.segments if not (segments / s.name).is_dir()]
    try:
        for seg in index.segments:
            seg.write(segments)
        manifest = msgspec.structs.replace(
            index.manifest,
            segments=[
                SegmentEntry(
                    s.name,
                    len(s.documents),
                    len(s.sentences),
                    sorted(index.deleted.get(s.name, ())),
                    s.files,
                )
                for s in index.segments
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
    index.manifest = manifest
    _remove_all_but(directory, name)
    return final


def load_snapshot(directory: Path, *, previous: CorpusIndex | None = None) -> CorpusIndex:
    """Load the current snapshot of ``directory``, checking every file's checksum.

    Segments never change, so those of ``previous`` (the index a replica serves, say)
    that the snapshot names with the same checksums are taken as they are, with their
    documents' derived values, instead of being read and derived again.
    """
    name = current_snapshot(directory)
    if name is None:
        raise IndexMissingError(f"{directory}: no index here")
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
        for doc_id, values in previous.derived_values.items()
        if previous.home.get(doc_id) in kept
    }  # fmt: skip
    index = CorpusIndex(manifest, segments, deleted, derived)
    if len(index.sentences) != manifest.sentences or len(index.documents) != manifest.documents:
        raise IndexFormatError(f"{directory}: snapshot {name} is corrupt: counts disagree")
    return index


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


def remove_unused(directory: Path) -> None:
    """Delete snapshots and segments that neither ``CURRENT`` nor a reader's lease holds."""
    name = current_snapshot(directory)
    if name is not None:
        _remove_all_but(directory, name)


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
