"""Documents and how they are read from .txt, .md and .jsonl files."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated

import msgspec

__all__ = ["Document", "corpus_checksum", "markdown_title", "read_documents"]

_DOC_ID = re.compile(r"[^A-Za-z0-9._-]+")
_MARKDOWN_SUFFIXES = {".md", ".markdown"}
_H1 = re.compile(r"^ {0,3}#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)


class Document(msgspec.Struct, frozen=True):
    """A source document; every offset in the index points into ``text``."""

    doc_id: str
    title: str
    text: str
    metadata: dict[str, str] = msgspec.field(default_factory=dict)  # stored, not indexed


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
                yield Document(
                    doc_id=str(record["doc_id"]),
                    title=str(record.get("title") or record["doc_id"]),
                    text=str(record["text"]),
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(
                    f"{path}:{number}: expected a JSON object with doc_id and text"
                ) from exc


def read_documents(paths: Iterable[Path]) -> list[Document]:
    """Read documents from .txt/.md files (one each) and .jsonl files (one per line).

    A title and metadata for ``NAME.txt`` or ``NAME.md`` may sit beside it in ``NAME.meta.json``
    (``{"title": ..., "metadata": {...}}``); the title there wins over a markdown heading.
    """
    docs: list[Document] = []
    for path in paths:
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            docs.extend(_read_jsonl(path))
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
            raise ValueError(f"{path}: unsupported file type (use .txt, .md or .jsonl)")
    seen: set[str] = set()
    for doc in docs:
        if doc.doc_id in seen:
            raise ValueError(f"duplicate doc_id {doc.doc_id!r}")
        seen.add(doc.doc_id)
    return docs


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
