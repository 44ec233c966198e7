"""``/v1/documents``: list and read documents; add, replace and delete them with an admin key."""

from __future__ import annotations

import threading
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromPath, FromQuery

from index import (
    DEFAULT_COLLECTION,
    Run,
    document_key,
    extract,
    keep_originals,
    pdf_boxes,
    read_original,
    render_page,
    split_key,
)
from service.errors import InvalidRequestError, NotFoundError
from service.http.access import Access
from service.http.apidoc import errors
from service.http.dependencies import AccessDep, RuntimeDep, SettingsDep
from service.http.guards import require_writer
from service.schemas import DocumentDetail, DocumentList, DocumentSummary, SentenceSpan
from service.writes import (
    IngestResult,
    collection_named,
    delete_document,
    not_found,
    parse_documents,
    parse_uploads,
    upsert_documents,
)

__all__ = ["DocumentsController"]


_RUNS: dict[str, list[Run]] = {}  # by kept original: how its text maps to page characters
_RUNS_KEPT = 64
_RUNS_LOCK = threading.Lock()  # page images are drawn in worker threads


def _runs(original: str, data: bytes) -> list[Run]:
    """How a kept PDF's text maps to its pages' characters: extracted again, as it was.

    Kept for the last 64 PDFs shown (the runs only, never the file's bytes).
    """
    with _RUNS_LOCK:
        runs = _RUNS.pop(original, None)
    if runs is None:
        runs = extract(data, original).runs
    with _RUNS_LOCK:
        _RUNS[original] = runs  # the most recent last
        while len(_RUNS) > _RUNS_KEPT:
            _RUNS.pop(next(iter(_RUNS)))
    return runs


class DocumentsController(Controller):
    """The corpus: read by anyone with an API key, written with an admin key."""

    path = "/documents"
    tags = ["documents"]  # noqa: RUF012 (Litestar reads it as a class attribute)

    @get(sync_to_thread=False, responses=errors(400, 401))
    def list_documents(
        self, runtime: RuntimeDep, access: AccessDep, collection: FromQuery[str | None] = None
    ) -> DocumentList:
        """List the indexed documents of the key's collections, or of ``collection``."""
        named = collection_named(collection)

        def listed(key: str) -> bool:
            home = split_key(key)[0]
            return access.sees(home) and named in (None, home)

        if (shards := runtime.answerer.shards) is not None:
            rows = [(key, title, chars, sentences) for key, title, chars, sentences
                    in shards.listing if listed(key)]  # fmt: skip
        else:
            index = runtime.answerer.index
            rows = [(d.doc_id, d.title, len(d.text), len(index.positions_of(d.doc_id)))
                    for d in index.documents.values() if listed(d.doc_id)]  # fmt: skip
        summaries = []
        for key, title, chars, sentences in rows:
            home, name = split_key(key)
            summaries.append(DocumentSummary(name, home, title, chars, sentences))
        return DocumentList(summaries)

    @get("/{doc_id:str}", sync_to_thread=True, responses=errors(400, 401, 404))
    def get_document(
        self,
        doc_id: FromPath[str],
        runtime: RuntimeDep,
        access: AccessDep,
        collection: FromQuery[str | None] = None,
    ) -> DocumentDetail:
        """A document's text and its sentences with offsets (``?collection=``: in that one)."""
        key = _key(access, collection, doc_id)
        if (shards := runtime.answerer.shards) is not None:
            fetched = shards.document(key)
            doc, sentences = (fetched.document, fetched.sentences) if fetched else (None, [])
        else:
            index = runtime.answerer.index
            doc, sentences = index.documents.get(key), index.sentences_of(key)
        if doc is None:
            raise not_found(key)
        spans = [SentenceSpan(s.sentence_id, s.start, s.end, s.text) for s in sentences]
        image = None
        if doc.pages is not None and doc.original:
            image = f"/v1/documents/{doc.name}/pages/{{page}}"
            if doc.collection != DEFAULT_COLLECTION:
                image += f"?collection={doc.collection}"
        return DocumentDetail(doc.name, doc.collection, doc.title, doc.text, spans, doc.pages,
                              image)  # fmt: skip

    @get("/{doc_id:str}/pages/{page:int}", sync_to_thread=True, media_type="image/png",
         responses=errors(400, 401, 404))  # fmt: skip
    def page_image(
        self,
        doc_id: FromPath[str],
        page: FromPath[int],
        runtime: RuntimeDep,
        settings: SettingsDep,
        access: AccessDep,
        start: FromQuery[int | None] = None,
        end: FromQuery[int | None] = None,
        collection: FromQuery[str | None] = None,
    ) -> Response[bytes]:
        """A PDF page as a PNG image, with the text ``[start, end)`` lit up on it.

        ``start`` and ``end`` are offsets into the document's text, as a citation gives them;
        the characters they cover on this page are highlighted.
        """
        key = _key(access, collection, doc_id)
        doc = runtime.answerer.index.documents.get(key)
        if doc is None:
            raise not_found(key)
        data = read_original(settings.index_dir, doc.original) if doc.original else None
        if doc.pages is None or data is None:
            raise NotFoundError(f"{doc_id!r} has no page images: it was not given as a PDF")
        if not 1 <= page <= len(doc.pages):
            raise NotFoundError(f"{doc_id!r} has pages 1 to {len(doc.pages)}, not {page}")
        boxes: list[tuple[float, float, float, float]] = []
        if start is not None or end is not None:
            lo, hi = start or 0, len(doc.text) if end is None else end
            if not 0 <= lo < hi <= len(doc.text):
                raise InvalidRequestError(
                    f"start and end must satisfy 0 <= start < end <= {len(doc.text)}"
                )
            boxes = pdf_boxes(data, _runs(doc.original or "", data), lo, hi).get(page - 1, [])
        return Response(render_page(data, page - 1, boxes), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})  # fmt: skip

    @post(status_code=201, guards=[require_writer],
          responses=errors(400, 401, 403, 404, 413, 415, 422, 507))  # fmt: skip
    async def add_documents(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        settings: SettingsDep,
        access: AccessDep,
    ) -> IngestResult:
        """Add or replace documents, answering once the change is durable.

        The body is JSON ``{doc_id?, title?, text, metadata?}``, a batch
        ``{"documents": [...]}``, a text/markdown body (``?doc_id=&title=``), or
        ``multipart/form-data`` with PDF, HTML, DOCX, text or markdown files in the field
        ``file`` (the kind is read from the bytes), and ``doc_id``, ``title``, ``collection``
        and ``metadata`` (a JSON object) as form fields; without ``doc_id`` the file's name
        gives it. The documents go into ``?collection=`` (or a document's own ``collection``),
        by default ``default``, or the key's one collection.
        """
        content_type = request.headers.get("content-type", "")
        given = collection_named(request.query_params.get("collection"))
        if content_type.lower().startswith("multipart/form-data"):
            form = await request.form()
            files, fields = [], {}
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    files.append((value.filename, await value.read()))
                else:
                    fields[key] = str(value)
            collection = access.collection(collection_named(fields.get("collection")) or given)
            _check_sees(access, [collection])
            originals: list[tuple[str, bytes]] = []
            docs = await anyio.to_thread.run_sync(
                parse_uploads, files, fields, settings, originals, collection
            )
            # Kept before the index names them; a failed write leaves an unnamed file, never
            # a document whose page cannot be shown.
            await anyio.to_thread.run_sync(keep_originals, settings.index_dir, originals)
        else:
            body = await request.body()
            query = dict(request.query_params)
            default = given or access.only_collection()  # else each document names its own
            docs = parse_documents(body, content_type, query, settings, default)
            _check_sees(access, [d.collection for d in docs])
        sees = None if access.collections is None else access.sees
        return await upsert_documents(runtime, docs, sees)

    @delete("/{doc_id:str}", status_code=200, guards=[require_writer],
            responses=errors(400, 401, 403, 404, 507))  # fmt: skip
    async def remove_document(
        self,
        doc_id: FromPath[str],
        runtime: RuntimeDep,
        access: AccessDep,
        collection: FromQuery[str | None] = None,
    ) -> dict[str, str]:
        """Delete a document (``?collection=``: of that one); later questions no longer see it."""
        key = _key(access, collection, doc_id)
        await delete_document(runtime, key)
        return {"deleted": doc_id, "collection": split_key(key)[0]}


def _key(access: Access, collection: str | None, doc_id: str) -> str:
    """The index key of ``doc_id`` in the collection meant; a 404 if the key does not see it."""
    home = access.collection(collection_named(collection))
    key = document_key(home, doc_id)
    if not access.sees(home) or "/" in doc_id:
        raise not_found(key)
    return key


def _check_sees(access: Access, collections: list[str]) -> None:
    """A write into a collection the key does not read is one into a collection not there."""
    for collection in collections:
        if not access.sees(collection):
            raise NotFoundError(f"no collection {collection!r}")
