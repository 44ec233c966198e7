"""``/v1/documents``: list and read documents; add, replace and delete them with an admin key."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromPath

from service.errors import NotFoundError
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
        return DocumentDetail(doc.doc_id, doc.title, doc.text, spans)

    @post(status_code=201, guards=[require_admin_key],
          responses=errors(400, 401, 403, 413, 507))  # fmt: skip
    async def add_documents(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        settings: SettingsDep,
    ) -> IngestResult:
        """Add or replace documents, answering once the change is durable.

        The body is JSON ``{doc_id?, title?, text, metadata?}``, a batch
        ``{"documents": [...]}``, a text/markdown body (``?doc_id=&title=``), or
        ``multipart/form-data`` with .txt/.md files (each file's name gives its doc_id).
        """
        content_type = request.headers.get("content-type", "")
        if content_type.lower().startswith("multipart/form-data"):
            form = await request.form()
            files = [
                (upload.filename, await upload.read())
                for _, upload in form.multi_items()
                if isinstance(upload, UploadFile)
            ]
            docs = parse_uploads(files, settings)
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
