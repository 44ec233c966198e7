"""Adding, replacing and deleting documents while the service runs.

Writes are serialised by one lock and run in a worker thread: segment, embed only the
new sentences, write a new snapshot, then swap the answerer's ``Reading``. A question
keeps the reading it started with, so it never waits and never sees half a change.
A write is acknowledged only after its snapshot is durable.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import hashlib
import logging
import re
import shutil
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from pathlib import PurePath
from typing import Annotated, Any, TypeVar

import anyio.to_thread
import msgspec
from msgspec import Meta

from index import (
    DEFAULT_COLLECTION,
    CorpusIndex,
    Document,
    ExtractionError,
    document_key,
    drop_originals,
    extract,
    markdown_title,
    merge_plan,
    merged_segment,
    original_name,
    save_snapshot,
    split_key,
    update_index,
    with_merged,
)
from service.answering import Answerer, Reading, Shards, ShardWriteError, ShardWritten
from service.errors import (
    IndexWriteError,
    InsufficientStorageError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    ShardUnavailableError,
    UnreadableFileError,
    UnsupportedFileError,
)
from service.runtime import PendingWrite, Runtime
from service.schemas import COLLECTION_NAME, Collection
from service.settings import Settings

__all__ = [
    "DocumentIn",
    "IngestResult",
    "collection_named",
    "delete_document",
    "not_found",
    "parse_documents",
    "parse_uploads",
    "upsert_documents",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
DocId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
Metadata = dict[str, str | int | float | bool | None]
_TEXT_TYPES = ("text/plain", "text/markdown", "text/x-markdown")


class DocumentIn(msgspec.Struct, forbid_unknown_fields=True):
    """A document to add or replace; without ``doc_id`` one is derived from the text."""

    text: str
    doc_id: DocId | None = None
    title: Annotated[str, Meta(max_length=500)] | None = None
    metadata: Metadata | None = None
    # The collection it goes into (a doc_id is unique within it); default: the request's.
    collection: Collection | None = None


class DocumentBatch(msgspec.Struct, forbid_unknown_fields=True):
    """Several documents in one request."""

    documents: Annotated[list[DocumentIn], Meta(min_length=1)]


class IngestedDocument(msgspec.Struct):
    """What became of one document."""

    doc_id: str
    title: str
    sentences: int
    chunks: int
    replaced: bool
    collection: str


class IngestResult(msgspec.Struct):
    """``POST /v1/documents``; the totals count the collections the key reads."""

    documents: list[IngestedDocument]
    total_documents: int
    total_sentences: int


def collection_named(name: str | None) -> str | None:
    """A collection named in a query or form field, or a 400 saying what a name may be."""
    if name is not None and not re.fullmatch(COLLECTION_NAME, name):
        raise InvalidRequestError(
            f"collection {name!r}: a name is 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def _check_text(text: str, where: str, settings: Settings) -> None:
    if len(text) > settings.max_document_chars:
        raise PayloadTooLargeError(
            f"{where}: text is {len(text)} characters; the limit is {settings.max_document_chars}"
        )
    if not text.strip():
        raise InvalidRequestError(f"{where}: text is empty")
    controls = sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\n\r\t\f\v")
    if "\0" in text or controls > 0.01 * len(text):
        raise InvalidRequestError(f"{where}: content is not text (control or NUL characters)")


def _document(item: DocumentIn, where: str, settings: Settings, collection: str | None) -> Document:
    _check_text(item.text, where, settings)
    collection = item.collection or collection
    if collection is None:
        raise InvalidRequestError(f"{where}: name its collection (the key writes several)")
    doc_id = item.doc_id or "doc-" + hashlib.sha256(item.text.encode()).hexdigest()[:16]
    metadata = {k: str(v) for k, v in (item.metadata or {}).items() if v is not None}
    key = document_key(collection, doc_id)
    return Document(doc_id=key, title=item.title or doc_id, text=item.text, metadata=metadata)


def parse_uploads(
    files: list[tuple[str, bytes]],
    fields: dict[str, str],
    settings: Settings,
    originals: list[tuple[str, bytes]],
    collection: str = DEFAULT_COLLECTION,
) -> list[Document]:
    """Documents from ``multipart/form-data`` files: PDF, HTML, DOCX, text or markdown.

    The kind is read from each file's bytes (``index.extract``). A form field ``doc_id`` or
    ``title`` names the document when one file is sent; ``metadata`` is a JSON object for
    each. Without ``doc_id``, a file's name gives it. The bytes of each PDF, HTML or DOCX
    file are appended to ``originals``, to be kept beside the index.
    """
    if not files:
        raise InvalidRequestError("the form has no file in it (send it in the field 'file')")
    if len(files) > settings.max_batch_documents:
        raise PayloadTooLargeError(
            f"{len(files)} files; the limit is {settings.max_batch_documents}"
        )
    if len(files) > 1 and (fields.get("doc_id") or fields.get("title")):
        raise InvalidRequestError("doc_id and title name one document: send one file with them")
    try:
        metadata = msgspec.json.decode(fields.get("metadata") or "{}", type=Metadata)
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(f"metadata: expected a JSON object of values ({exc})") from exc
    docs, kept = [], []
    for k, (name, data) in enumerate(files):
        if name and ("/" in name or "\\" in name or name.strip(". ") == ""):
            raise InvalidRequestError(
                f"file name {name!r} holds a path: send the file under its own name"
            )
        path = PurePath(name or "upload.txt")
        try:
            found = extract(data, path.name, max_pages=settings.max_pdf_pages)
        except ExtractionError as exc:
            error = {413: PayloadTooLargeError, 415: UnsupportedFileError}.get(
                exc.status, UnreadableFileError
            )
            raise error(str(exc)) from exc
        doc_id = fields.get("doc_id") or re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-.")
        heading = markdown_title(found.text) if found.kind == "markdown" else found.title
        title = (fields.get("title") or heading or path.stem)[:500]
        item = _valid(dict(text=found.text, doc_id=doc_id or None, title=title, metadata=metadata))
        doc = _document(item, f"files[{k}] ({path.name})", settings, collection)
        if found.kind in ("pdf", "html", "docx"):
            original = original_name(data, found.kind)
            kept.append((original, data))
            doc = msgspec.structs.replace(doc, pages=found.pages, original=original)
        docs.append(doc)
    if len({d.doc_id for d in docs}) != len(docs):
        raise InvalidRequestError("two files give the same doc_id: rename one")
    originals.extend(kept)
    return docs


def _valid(fields: dict[str, Any]) -> DocumentIn:
    """``fields`` as a :class:`DocumentIn`, or a 400 naming what is wrong with them."""
    try:
        return msgspec.convert(fields, DocumentIn)
    except msgspec.ValidationError as exc:
        raise InvalidRequestError(str(exc)) from exc


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(f"{where} is not UTF-8 text") from exc


def _documents(
    items: list[DocumentIn], settings: Settings, collection: str | None
) -> list[Document]:
    docs = [
        _document(item, f"documents[{i}]", settings, collection) for i, item in enumerate(items)
    ]
    ids = [d.doc_id for d in docs]
    if len(set(ids)) != len(ids):
        raise InvalidRequestError("the batch names the same doc_id twice in one collection")
    return docs


def parse_documents(
    body: bytes,
    content_type: str,
    query: dict[str, str],
    settings: Settings,
    collection: str | None = DEFAULT_COLLECTION,
) -> list[Document]:
    """Documents from a JSON body (one or ``{"documents": [...]}``) or a text upload.

    Each goes into its own ``collection`` field, else ``collection``.
    """
    media = content_type.split(";")[0].strip().lower()
    if media in _TEXT_TYPES:
        fields: dict[str, Any] = {"text": _decode(body, "upload")}
        if media != "text/plain" and (heading := markdown_title(fields["text"])):
            fields["title"] = heading
        for key in ("doc_id", "title"):
            if query.get(key):
                fields[key] = query[key]
        items = [_convert(fields, DocumentIn)]
    else:  # JSON whatever the declared type: `curl -d` declares a form
        try:
            raw = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise InvalidRequestError(
                f"malformed JSON: {exc} (send JSON, text/plain, text/markdown or "
                "multipart/form-data)"
            ) from exc
        if isinstance(raw, dict) and "documents" in raw:
            documents = raw["documents"]
            if isinstance(documents, list) and len(documents) > settings.max_batch_documents:
                raise PayloadTooLargeError(
                    f"batch has {len(documents)} documents; the limit is "
                    f"{settings.max_batch_documents}"
                )
            items = _convert(raw, DocumentBatch).documents
        else:
            items = [_convert(raw, DocumentIn)]
    return _documents(items, settings, collection)


def _convert(raw: Any, kind: type[_T]) -> _T:
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        raise InvalidRequestError(str(exc)) from exc


def _apply(answerer: Answerer, upserts: Sequence[Document], deletes: Sequence[str]) -> Reading:
    index = update_index(answerer.index, answerer.embedder, upserts=upserts, deletes=deletes)
    save_snapshot(
        index, answerer.settings.index_dir
    )  # durable before the swap, and before the reply
    return answerer.read(index)


async def _write(
    runtime: Runtime, *, upserts: Sequence[Document] = (), deletes: Sequence[str] = ()
) -> Reading:
    """Apply a change once it is durable; writes that queue meanwhile go in one batch.

    The first writer to get the lock takes every change waiting for it and makes them one
    index update and one snapshot: ten writes at once cost about one.
    """
    done: asyncio.Future[Reading] = asyncio.get_running_loop().create_future()
    runtime.pending_writes.append((list(upserts), list(deletes), done))
    async with runtime.write_lock:
        if not done.done():
            batch, runtime.pending_writes = runtime.pending_writes, []
            await _apply_batch(runtime, batch)
    new = done.result()  # raises the batch's error, if it failed
    if runtime.llm is not None:
        # The whole-corpus prompt prefix changed; re-warm it off the request path.
        runtime.rewarm()
    if (runtime.merging is None or runtime.merging.done()) and merge_plan(new.index):
        runtime.merging = asyncio.create_task(merge_segments(runtime))
        runtime.background(runtime.merging)
    return new


async def merge_segments(runtime: Runtime) -> None:
    """Fold small segments together until no merge is due, without holding up anyone.

    The merged segment (vectors copied, FAISS index and postings built) is made off the
    write lock from the index as it was; the lock is taken only to lay it over the index
    as it is now, tombstoning what writes changed meanwhile, and to save the snapshot.
    Readers keep the index they took. A failed merge is logged and changes nothing.
    """
    try:
        while plan := merge_plan(runtime.answerer.index):
            merge = functools.partial(
                merged_segment,
                runtime.answerer.index,
                plan,
                compress_threshold=runtime.answerer.settings.compress_above,
            )
            merged = await anyio.to_thread.run_sync(merge)
            async with runtime.write_lock:
                answerer = runtime.answerer
                index = with_merged(answerer.index, merged, plan)
                if index is not None:
                    await anyio.to_thread.run_sync(
                        save_snapshot, index, answerer.settings.index_dir
                    )
                    answerer.swap(await anyio.to_thread.run_sync(answerer.read, index))
                    log.info("merged %d segments into one", len(plan))
    except Exception:
        log.exception("segment merge failed; the index is unchanged")


async def _apply_batch(runtime: Runtime, batch: list[PendingWrite]) -> None:
    upserts: dict[str, Document] = {}
    deletes: set[str] = set()
    for docs, doc_ids, _ in batch:  # in arrival order: a later change to a doc wins
        for doc_id in doc_ids:
            upserts.pop(doc_id, None)
            deletes.add(doc_id)
        for doc in docs:
            upserts[doc.doc_id] = doc
            deletes.discard(doc.doc_id)
    try:
        new = await anyio.to_thread.run_sync(
            _apply, runtime.answerer, list(upserts.values()), sorted(deletes)
        )
    except (OSError, RuntimeError) as exc:  # FAISS reports a failed write as RuntimeError
        if isinstance(exc, RuntimeError) and "write" not in str(exc).lower():
            for _, _, done in batch:
                done.set_exception(exc)
            raise
        reason = getattr(exc, "strerror", None) or type(exc).__name__  # no path in it
        message = f"the index could not be written ({reason}); nothing was changed"
        full = getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
        error: IndexWriteError = (
            InsufficientStorageError(message)
            if full or _nearly_full(runtime.answerer.settings.index_dir)
            else IndexWriteError(message)
        )
        for _, _, done in batch:
            done.set_exception(error)
        return
    except BaseException as exc:
        for _, _, done in batch:
            if not done.done():
                done.set_exception(exc)
        raise
    runtime.answerer.swap(new)
    for _, _, done in batch:
        done.set_result(new)


# A write that fails with less than this free is taken for a full disk: numpy and FAISS
# do not always say why a write failed (an OSError without errno, a RuntimeError).
_LOW_DISK_BYTES = 64 * 1024 * 1024


def _nearly_full(directory: PurePath) -> bool:
    try:
        return shutil.disk_usage(directory).free < _LOW_DISK_BYTES
    except OSError:
        return False


# What a write puts on disk per character of text, and per sentence (about one per 100
# characters): the text in documents.jsonl, sentences.jsonl and the chunks (3x), BM25 terms
# and postings (1x); a float32 vector per sentence and FAISS's copy of it.
_BYTES_PER_CHAR = 4
_CHARS_PER_SENTENCE = 100


def _check_room(directory: PurePath, docs: Sequence[Document], dim: int) -> None:
    """A 507 before any embedding when the disk cannot hold the write (and a margin)."""
    chars = sum(len(d.text) for d in docs)
    needed = chars * _BYTES_PER_CHAR + (chars // _CHARS_PER_SENTENCE + 1) * dim * 4 * 2
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return  # no index directory yet: the write itself will say
    if free < needed + _LOW_DISK_BYTES:
        raise InsufficientStorageError(
            f"the disk has {free // 2**20} MiB free; this write needs about "
            f"{(needed + _LOW_DISK_BYTES) // 2**20} MiB; nothing was changed: free space, "
            "or write less"
        )


async def _write_to_shards(
    shards: Shards, upserts: list[Document], deletes: list[str]
) -> ShardWritten:
    try:
        return await anyio.to_thread.run_sync(shards.write, upserts, deletes)
    except ShardWriteError as exc:
        raise ShardUnavailableError(f"{exc}; retry it (writes are idempotent)") from exc


async def upsert_documents(
    runtime: Runtime, docs: list[Document], sees: Callable[[str], bool] | None = None
) -> IngestResult:
    """Add or replace ``docs``; returns once the new snapshot is durable and live.

    The totals count the documents of the collections ``sees`` (None: of every one).
    """
    if (shards := runtime.answerer.shards) is not None:  # each to its home shard
        written = await _write_to_shards(shards, docs, [])
        titles = {d.doc_id: d.title for d in docs}
        documented = [_ingested(key, titles[key], sentences, chunks, replaced)
                      for key, sentences, chunks, replaced in written.documents]  # fmt: skip
        if sees is None:
            return IngestResult(documented, written.total_documents, written.total_sentences)
        await anyio.to_thread.run_sync(shards.refresh)
        rows = [(key, sentences) for key, _, _, sentences in shards.listing]
        return IngestResult(documented, *_totals(rows, sees))
    _check_room(runtime.answerer.settings.index_dir, docs, runtime.answerer.embedder.dim)
    existing = set(runtime.answerer.index.documents)
    new = await _write(runtime, upserts=docs)
    index = new.index
    if existing & {d.doc_id for d in docs}:  # a replaced document may leave its file behind
        _drop_unnamed_originals(runtime, index)
    documented = [
        _ingested(d.doc_id, d.title, len(index.sentences_of(d.doc_id)),
                  len(index.chunks_of(d.doc_id)), d.doc_id in existing)
        for d in docs
    ]  # fmt: skip
    if sees is None:
        return IngestResult(documented, len(index.documents), len(index.sentences))
    rows = [(key, len(index.positions_of(key))) for key in index.documents]
    return IngestResult(documented, *_totals(rows, sees))


def _ingested(
    key: str, title: str, sentences: int, chunks: int, replaced: bool
) -> IngestedDocument:
    collection, doc_id = split_key(key)
    return IngestedDocument(doc_id, title, sentences, chunks, replaced, collection)


def _totals(rows: Iterable[tuple[str, int]], sees: Callable[[str], bool]) -> tuple[int, int]:
    """How many documents, and sentences, of ``(key, sentences)`` rows ``sees`` sees."""
    documents = sentences = 0
    for key, count in rows:
        if sees(split_key(key)[0]):
            documents += 1
            sentences += count
    return documents, sentences


def _drop_unnamed_originals(runtime: Runtime, index: CorpusIndex) -> None:
    """Remove the kept files of documents deleted or replaced; a failure is only logged."""
    names = (d.original for d in index.documents.values() if d.original)
    try:
        drop_originals(runtime.answerer.settings.index_dir, names)
    except OSError as exc:
        log.warning("could not remove unnamed originals: %s", exc)


def not_found(key: str) -> NotFoundError:
    """The 404 of a document that is not there, or not in the key's collections: the same."""
    collection, doc_id = split_key(key)
    where = "" if collection == DEFAULT_COLLECTION else f" in collection {collection!r}"
    return NotFoundError(f"no document with doc_id {doc_id!r}{where}")


async def delete_document(runtime: Runtime, key: str) -> None:
    """Remove the document under index key ``key``; 404 if it is not there."""
    if (shards := runtime.answerer.shards) is not None:
        await anyio.to_thread.run_sync(shards.refresh)
        if not shards.holds(key):
            raise not_found(key)
        await _write_to_shards(shards, [], [key])
        return
    if key not in runtime.answerer.index.documents:
        raise not_found(key)
    new = await _write(runtime, deletes=[key])
    _drop_unnamed_originals(runtime, new.index)
