"""Documents and how they are read from files: .txt, .md, .jsonl, and PDF, HTML and DOCX."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated

import msgspec

from index.extract import extract

__all__ = [
    "DEFAULT_COLLECTION",
    "Document",
    "corpus_checksum",
    "document_key",
    "drop_originals",
    "keep_originals",
    "markdown_title",
    "original_name",
    "read_documents",
    "read_original",
    "split_key",
]

_DOC_ID = re.compile(r"[^A-Za-z0-9._-]+")
_MARKDOWN_SUFFIXES = {".md", ".markdown"}
_EXTRACTED_SUFFIXES = {".pdf", ".html", ".htm", ".xhtml", ".docx"}
_H1 = re.compile(r"^ {0,3}#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)


# Where a document goes when no collection is named. A doc_id never holds "/", so
# "NAME/doc_id" is one key.
DEFAULT_COLLECTION = "default"


def document_key(collection: str, doc_id: str) -> str:
    """The index's key of ``doc_id`` in ``collection``: the id alone in the default one.

    A doc_id is unique within its collection; the key is unique in the index, and an index
    written before collections holds the default collection's keys unchanged.
    """
    return doc_id if collection == DEFAULT_COLLECTION else f"{collection}/{doc_id}"


def split_key(key: str) -> tuple[str, str]:
    """The collection and the doc_id of an index key (``document_key`` undone)."""
    collection, sep, doc_id = key.rpartition("/")
    return (collection, doc_id) if sep else (DEFAULT_COLLECTION, key)


class Document(msgspec.Struct, frozen=True):
    """A source document; every offset in the index points into ``text``."""

    doc_id: str  # the index's key: ``document_key(collection, the doc_id given)``
    title: str
    text: str
    metadata: dict[str, str] = msgspec.field(default_factory=dict)  # stored, not indexed
    # A paged document (PDF): where each page starts in ``text``; None without pages.
    pages: list[int] | None = None
    # The file the text was extracted from (PDF, HTML, DOCX), kept beside the index by its
    # sha256 (``keep_originals``); None for text given as text.
    original: str | None = None

    @property
    def collection(self) -> str:
        """The collection the document belongs to."""
        return split_key(self.doc_id)[0]

    @property
    def name(self) -> str:
        """The doc_id it was given, unique within its collection."""
        return split_key(self.doc_id)[1]


_ORIGINALS = "originals"


def original_name(data: bytes, kind: str) -> str:
    """The name a file is kept under beside the index: its content, hashed, and its kind."""
    return f"{hashlib.sha256(data).hexdigest()}.{kind}"


def keep_originals(index_dir: Path, files: Iterable[tuple[str, bytes]]) -> None:
    """Keep each ``(original_name, bytes)`` beside the index, once; written whole or not at all."""
    from index.files import fsync

    directory = index_dir / _ORIGINALS
    for name, data in files:
        target = directory / name
        if target.exists():
            continue
        directory.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        partial.write_bytes(data)
        fsync(partial)
        partial.replace(target)
        fsync(directory)


def drop_originals(index_dir: Path, keep: Iterable[str], older_than_s: float = 600.0) -> int:
    """Remove kept originals no document names any more; how many went.

    Only those older than ``older_than_s``: an upload keeps its original before the write
    that names it, and a write that is under way must not lose it.
    """
    directory = index_dir / _ORIGINALS
    if not directory.is_dir():
        return 0
    named, cutoff, dropped = set(keep), time.time() - older_than_s, 0
    for path in directory.iterdir():
        if path.name in named or path.suffix == ".partial":
            continue
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                dropped += 1
    return dropped


def read_original(index_dir: Path, name: str) -> bytes | None:
    """A kept original's bytes; None if it is not kept (or the name is no kept name)."""
    if not re.fullmatch(r"[0-9a-f]{64}\.[a-z]+", name):
        return None
    path = index_dir / _ORIGINALS / name
    return path.read_bytes() if path.is_file() else None


def markdown_title(text: str) -> str | None:
    """The text of a markdown document's first ``#`` heading, if it has one."""
    match = _H1.search(text)
    return " ".join(match.group(1).split())[:500] if match else None


def _doc_id_from_path(path: Path) -> str:
    return _DOC_ID.sub("-", path.stem).strip("-") or "doc"


class _About(msgspec.Struct, forbid_unknown_fields=True):
    """What ``NAME.meta.json`` beside ``NAME.txt`` says about it: the text stays untouched."""

    title: Annotated[str, msgspec.Meta(min_length=1, max_length=500)] | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


def _sidecar(path: Path) -> _About:
    meta = path.with_suffix(".meta.json")
    if not meta.is_file():
        return _About()
    try:
        return msgspec.json.decode(meta.read_bytes(), type=_About)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise ValueError(f"{meta}: {exc}") from exc


def _read_jsonl(path: Path) -> Iterator[Document]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                doc = Document(
                    doc_id=str(record["doc_id"]),
                    title=str(record.get("title") or record["doc_id"]),
                    text=str(record["text"]),
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(
                    f"{path}:{number}: expected a JSON object with doc_id and text"
                ) from exc
            if "/" in doc.doc_id:  # it would read as a collection's name
                raise ValueError(f"{path}:{number}: a doc_id may not hold '/' (use --collection)")
            yield doc


def read_documents(
    paths: Iterable[Path],
    originals: list[tuple[str, bytes]] | None = None,
    collection: str = DEFAULT_COLLECTION,
) -> list[Document]:
    """Read documents from .txt/.md/.pdf/.html/.docx files (one each) and .jsonl (one per line).

    A title and metadata for ``NAME.txt`` (or any single-document file) may sit beside it in
    ``NAME.meta.json`` (``{"title": ..., "metadata": {...}}``); the title there wins over a
    markdown heading or the file's own title. The bytes of each PDF, HTML or DOCX file go
    into ``originals``, if given, to be kept beside the index (``keep_originals``). Every
    document goes into ``collection``.
    """
    docs: list[Document] = []
    for path in paths:
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            docs.extend(_read_jsonl(path))
        elif suffix in _EXTRACTED_SUFFIXES:
            data = path.read_bytes()
            found = extract(data, path.name)
            about = _sidecar(path)
            name = original_name(data, found.kind)
            if originals is not None:
                originals.append((name, data))
            docs.append(
                Document(
                    doc_id=_doc_id_from_path(path),
                    title=about.title or found.title or path.stem,
                    text=found.text,
                    metadata=about.metadata,
                    pages=found.pages,
                    original=name,
                )
            )
        elif suffix in {".txt", *_MARKDOWN_SUFFIXES}:
            text = path.read_text(encoding="utf-8")
            heading = markdown_title(text) if suffix in _MARKDOWN_SUFFIXES else None
            about = _sidecar(path)
            docs.append(
                Document(
                    doc_id=_doc_id_from_path(path),
                    title=about.title or heading or path.stem,
                    text=text,
                    metadata=about.metadata,
                )
            )
        else:
            raise ValueError(
                f"{path}: unsupported file type (use .pdf, .html, .docx, .txt, .md or .jsonl)"
            )
    seen: set[str] = set()
    for doc in docs:
        if doc.doc_id in seen:
            raise ValueError(f"duplicate doc_id {doc.doc_id!r}")
        seen.add(doc.doc_id)
    if collection == DEFAULT_COLLECTION:
        return docs
    return [msgspec.structs.replace(d, doc_id=document_key(collection, d.doc_id)) for d in docs]


def corpus_checksum(docs: Iterable[Document]) -> str:
    """Hash of every document's id, title and text, in order."""
    digest = hashlib.sha256()
    for doc in docs:
        for part in (doc.doc_id, doc.title, doc.text):
            digest.update(part.encode("utf-8"))
            digest.update(b"\0")
    return digest.hexdigest()


def read_documents_jsonl(path: Path) -> list[Document]:
    """The documents of a ``documents.jsonl`` that an index wrote."""
    return [
        msgspec.json.decode(line, type=Document) for line in path.read_bytes().splitlines() if line
    ]
