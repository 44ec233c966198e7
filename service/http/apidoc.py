"""What the generated OpenAPI schema cannot infer: error bodies, the SSE alternative, raw bodies.

Handlers declare their error statuses with :func:`errors`; :class:`CompletedJson` serves
``/schema/openapi.json`` after :func:`finish` has completed the generated schema.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin

from service.http.wire import OpenAIErrorBody
from service.schemas import ErrorBody
from service.writes import DocumentBatch, DocumentIn

__all__ = ["CompletedJson", "errors", "finish"]

_REASONS = {
    400: "The body or a parameter is invalid; `extra` (OpenAI: `param`) names the field.",
    401: "CITEQA_API_KEYS (or, for writes, CITEQA_ADMIN_KEYS) is set and the bearer key is "
    "missing or wrong.",
    403: "Document writes are disabled: CITEQA_ADMIN_KEYS is not set, or this is a read-only "
    "replica.",
    404: "No document has this doc_id.",
    413: "The body, a document, a batch or a PDF's pages are over their limit.",
    415: "The body is not JSON; or an uploaded file's bytes are no kind read here (PDF, HTML, "
    "DOCX, text, markdown), or not the kind its name says.",
    422: "The file gives no text: an encrypted or scanned PDF, a damaged file, a page with no "
    "main text. The detail says which, and what to do.",
    429: "Too many requests from this client; Retry-After says when to come back.",
    502: "The language model failed to answer.",
    503: "Still loading, or too busy; Retry-After says when to come back.",
    507: "The index could not be written: the disk is full. Nothing was changed.",
}


def errors(*codes: int, openai: bool = False) -> dict[int, ResponseSpec]:
    """The documented error responses of a ``/v1`` route, in its error shape.

    Every such route may also answer 429 (rate limit) and 503 (loading).
    """
    body: type[Any] = OpenAIErrorBody if openai else ErrorBody
    return {
        code: ResponseSpec(body, description=_REASONS[code], generate_examples=False)
        for code in sorted({*codes, 429, 503})
    }


_STREAMS = {
    "/v1/ask": (
        "The answer, or an abstention. With `stream: true`, Server-Sent Events: "
        "`answer.delta`, `citation`, `error`, and a final `done` whose data is the AskResponse.",
        ["answer.delta", "citation", "error", "done"],
    ),
    "/v1/chat/completions": (
        "The cited answer. With `stream: true`, Server-Sent Events whose data are "
        "`chat.completion.chunk` objects, then `[DONE]`.",
        None,
    ),
}


def _event(names: list[str] | None) -> dict[str, Any]:
    # The chat stream's events are unnamed.
    event = {"type": "string", "enum": names} if names else {"type": "string", "const": ""}
    return {
        "type": "object",
        "required": ["data"],
        "properties": {"event": event, "data": {"type": "string"}},
    }


# Request structs that refuse unknown fields; the generated schema does not say so.
_CLOSED = ("AskRequest", "SearchRequest")


def _documents_body(components: dict[str, Any]) -> dict[str, Any]:
    (one, batch), defs = msgspec.json.schema_components(
        [DocumentIn, DocumentBatch], ref_template="#/components/schemas/{name}"
    )
    components.update(defs)
    text = {"schema": {"type": "string"}}
    return {
        "required": True,
        "description": "A document, a batch of documents, a text or markdown body (with "
        "`?doc_id=&title=`), or .txt/.md files as multipart form data.",
        "content": {
            "application/json": {"schema": {"oneOf": [one, batch]}},
            "text/plain": text,
            "text/markdown": text,
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                }
            },
        },
    }


def finish(schema: dict[str, Any]) -> None:
    """Complete the generated schema in place."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in _CLOSED:
        if name in components:
            components[name]["additionalProperties"] = False
    paths = schema["paths"]
    for path, (description, names) in _STREAMS.items():
        ok = paths[path]["post"]["responses"]["200"]
        ok.setdefault("content", {})["text/event-stream"] = {"schema": _event(names)}
        ok["description"] = description
    paths["/v1/documents"]["post"]["requestBody"] = _documents_body(components)


class CompletedJson(JsonRenderPlugin):
    """``openapi.json``, completed by :func:`finish` (idempotent) before it is rendered."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """Complete the schema, then render it as JSON."""
        finish(openapi_schema)
        return super().render(request, openapi_schema)
