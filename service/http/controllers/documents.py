"""``/v1/documents``: list and read documents; add, replace and delete them with an admin key."""

from __future__ import annotations

import threading
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromPath, FromQuery

from index import Run, extract, keep_originals, pdf_boxes, read_original, render_page
from service.errors import InvalidRequestError, NotFoundError
from service.http.apidoc import errors
from service.http.dependencies import RuntimeDep, SettingsDep
from service.http.guards import require_admin_key
from service.schemas import DocumentDetail, DocumentList, DocumentSummary, SentenceSpan
from service.writes import (
    IngestResult,
    delete_document,
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

    @get(sync_to_thread=False, responses=errors(401))
    def list_documents(self, runtime: RuntimeDep) -> DocumentList:
        """List the indexed documents."""
        if (shards := runtime.answerer.shards) is not None:
            return DocumentList([DocumentSummary(*row) for row in shards.listing])
        index = runtime.answerer.index
        return DocumentList(
            [
                DocumentSummary(d.doc_id, d.title, len(d.text), len(index.sentences_of(d.doc_id)))
                for d in index.documents.values()
            ]
        )

    @get("/{doc_id:str}", sync_to_thread=True, responses=errors(401, 404))
    def get_document(self, doc_id: FromPath[str], runtime: RuntimeDep) -> DocumentDetail:
        """A document's text and its sentences with offsets."""
        if (shards := runtime.answerer.shards) is not None:
            fetched = shards.document(doc_id)
            doc, sentences = (fetched.document, fetched.sentences) if fetched else (None, [])
        else:
            index = runtime.answerer.index
            doc, sentences = index.documents.get(doc_id), index.sentences_of(doc_id)
        if doc is None:
            raise NotFoundError(f"no document with doc_id {doc_id!r}")
        spans = [SentenceSpan(s.sentence_id, s.start, s.end, s.text) for s in sentences]
        image = (
            f"/v1/documents/{doc.doc_id}/pages/{{page}}"
            if doc.pages is not None and doc.original
            else None
        )
        return DocumentDetail(doc.doc_id, doc.title, doc.text, spans, doc.pages, image)

    @get("/{doc_id:str}/pages/{page:int}", sync_to_thread=True, media_type="image/png",
         responses=errors(400, 401, 404))  # fmt: skip
    def page_image(
        self,
        doc_id: FromPath[str],
        page: FromPath[int],
        runtime: RuntimeDep,
        settings: SettingsDep,
        start: FromQuery[int | None] = None,
        end: FromQuery[int | None] = None,
    ) -> Response[bytes]:
        """A PDF page as a PNG image, with the text ``[start, end)`` lit up on it.

        ``start`` and ``end`` are offsets into the document's text, as a citation gives them;
        the characters they cover on this page are highlighted.
        """
        doc = runtime.answerer.index.documents.get(doc_id)
        if doc is None:
            raise NotFoundError(f"no document with doc_id {doc_id!r}")
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

    @post(status_code=201, guards=[require_admin_key],
          responses=errors(400, 401, 403, 413, 415, 422, 507))  # fmt: skip
    async def add_documents(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        settings: SettingsDep,
    ) -> IngestResult:
        """Add or replace documents, answering once the change is durable.

        The body is JSON ``{doc_id?, title?, text, metadata?}``, a batch
        ``{"documents": [...]}``, a text/markdown body (``?doc_id=&title=``), or
        ``multipart/form-data`` with PDF, HTML, DOCX, text or markdown files in the field
        ``file`` (the kind is read from the bytes), and ``doc_id``, ``title`` and
        ``metadata`` (a JSON object) as form fields; without ``doc_id`` the file's name gives it.
        """
        content_type = request.headers.get("content-type", "")
        if content_type.lower().startswith("multipart/form-data"):
            form = await request.form()
            files, fields = [], {}
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    files.append((value.filename, await value.read()))
                else:
                    fields[key] = str(value)
            originals: list[tuple[str, bytes]] = []
            docs = await anyio.to_thread.run_sync(parse_uploads, files, fields, settings, originals)
            # Kept before the index names them; a failed write leaves an unnamed file, never
            # a document whose page cannot be shown.
            await anyio.to_thread.run_sync(keep_originals, settings.index_dir, originals)
        else:
            body = await request.body()
            docs = parse_documents(body, content_type, dict(request.query_params), settings)
        return await upsert_documents(runtime, docs)

    @delete("/{doc_id:str}", status_code=200, guards=[require_admin_key],
            responses=errors(401, 403, 404, 507))  # fmt: skip
    async def remove_document(self, doc_id: FromPath[str], runtime: RuntimeDep) -> dict[str, str]:
        """Delete a document; later questions no longer see it."""
        await delete_document(runtime, doc_id)
        return {"deleted": doc_id}
