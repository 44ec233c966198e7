"""The Litestar application: thin handlers over the answering pipeline."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.abc
import msgspec
from litestar import Litestar, MediaType, Request, Response, Router, delete, get, post
from litestar.config.cors import CORSConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import State, UploadFile
from litestar.enums import ScopeType
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    TooManyRequestsException,
    ValidationException,
)
from litestar.handlers import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.params import FromPath, JSONBody
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from service.answering.pipeline import AnswerDelta, Answerer, AskEvent, CitationFound, StreamFailed
from service.http.apidoc import CompletedJson, errors
from service.answering.conversation import is_frontend_task, run_task, standalone_question
from service.errors import (
    BodyTimeoutError,
    BusyError,
    CiteQAError,
    ClientGoneError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    NotReadyError,
)
from service.writes import (
    IngestResult,
    delete_document,
    parse_documents,
    parse_uploads,
    upsert_documents,
)
from service.observe import RequestLog
from service.http.openai import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ModelList,
    SourceCards,
    chat_chunks,
    chat_completion,
    model_list,
    task_chunks,
    task_completion,
)
from service.runtime import Runtime, load_runtime
from service.schemas import (
    AskRequest,
    AskResponse,
    DocumentDetail,
    DocumentList,
    DocumentSummary,
    SearchRequest,
    SearchResponse,
    SentenceSpan,
)
from service.settings import Settings

__all__ = ["Loader", "create_app"]

log = logging.getLogger(__name__)

Loader = Callable[[Settings], Awaitable[Runtime]]
_T = TypeVar("_T")


@dataclass
class _Lifecycle:
    """Where loading stands; handlers read it, the startup task writes it."""

    runtime: Runtime | None = None
    failure: str | None = None
    task: asyncio.Task[None] | None = None


def _runtime(state: State) -> Runtime:
    life: _Lifecycle = state.life
    if life.runtime is None:
        raise NotReadyError(f"service failed to load: {life.failure}" if life.failure else None)
    return life.runtime


_STATIC = Path(__file__).parent / "static"
# The page loads only its own files and talks only to this server.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


@get("/", include_in_schema=False, sync_to_thread=False)
def playground() -> Response[bytes]:
    """The playground page: ask, and see each cited sentence lit up in its document."""
    page = (_STATIC / "index.html").read_bytes()
    return Response(page, media_type=MediaType.HTML, headers=_PAGE_HEADERS)


@get("/healthz", tags=["health"], sync_to_thread=False)
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@get("/readyz", tags=["health"], sync_to_thread=False)
def readyz(state: State) -> Response[dict[str, Any]]:
    """Readiness: 200 once the index and the LLM are loaded, else 503."""
    life: _Lifecycle = state.life
    if life.runtime is None:
        status = "failed" if life.failure else "loading"
        body: dict[str, Any] = {"status": status}
        if life.failure:
            body["detail"] = life.failure
        return Response(body, status_code=503)
    runtime = life.runtime
    manifest = runtime.answerer.index.manifest
    return Response(
        {
            "status": "ready",
            "index": msgspec.to_builtins(manifest),
            "llm": runtime.llm.name if runtime.llm else None,
            "embedded_llm": runtime.embedded is not None,
            "load_ms": runtime.timings_ms,
        }
    )


@post("/ask", tags=["answers"], status_code=200,
      responses={200: ResponseSpec(AskResponse, description="answer")}
      | errors(400, 401, 502))  # fmt: skip
async def ask(
    data: JSONBody[AskRequest], state: State, request: Request[Any, Any, Any]
) -> AskResponse | ServerSentEvent:
    """Answer a question with verified sentence citations, or abstain.

    With ``"stream": true`` the answer comes as Server-Sent Events: ``answer.delta``,
    ``citation`` (each once its claim is verified), ``error``, and a final ``done``
    holding exactly the non-streaming response.
    """
    answerer = _runtime(state).answerer
    answerer.check_capacity(data.answer_mode)
    if not data.stream:
        return await _while_connected(
            request, answerer.ask(data.question, data.top_k, data.answer_mode)
        )
    return _EventStream(_ask_stream(answerer, data))


async def _while_connected(request: Request[Any, Any, Any], work: Awaitable[_T]) -> _T:
    """Await ``work`` unless the client disconnects first; then it is cancelled.

    A streamed answer stops when its stream is closed; this gives a non-streamed one the
    same: the LLM call behind a question nobody waits for is closed, not left running.
    """
    result: list[_T] = []
    failure: list[Exception] = []

    async def watch(group: anyio.abc.TaskGroup) -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        group.cancel_scope.cancel()

    async with anyio.create_task_group() as group:
        group.start_soon(watch, group)
        try:
            result.append(await work)
        except Exception as exc:
            failure.append(exc)
        group.cancel_scope.cancel()
    if failure:
        raise failure[0]
    if not result:
        raise ClientGoneError()
    return result[0]


class _EventStream(ServerSentEvent):
    """An SSE response that keeps its content type under a handler that also returns JSON.

    Litestar 2 lets the handler's inferred media type (JSON, from the union return
    type) win over the response's own ``text/event-stream``.
    """

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["media_type"] = "text/event-stream"
        return super().to_asgi_response(*args, **kwargs)


async def _ask_stream(
    answerer: Answerer, data: AskRequest
) -> AsyncIterator[ServerSentEventMessage]:
    # aclosing: a client that disconnects closes the chain down to the upstream request.
    async with aclosing(answerer.ask_events(data.question, data.top_k, data.answer_mode)) as events:
        try:
            async for event in events:
                yield _sse(event)
        except CiteQAError as exc:
            yield ServerSentEventMessage(event="error", data=_json({"message": exc.message}))


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def _sse(event: AskEvent) -> ServerSentEventMessage:
    if isinstance(event, AnswerDelta):
        return ServerSentEventMessage(event="answer.delta", data=_json({"text": event.text}))
    if isinstance(event, CitationFound):
        body = {"number": event.number, **msgspec.to_builtins(event.citation)}
        return ServerSentEventMessage(event="citation", data=_json(body))
    if isinstance(event, StreamFailed):
        return ServerSentEventMessage(event="error", data=_json({"message": event.message}))
    return ServerSentEventMessage(event="done", data=_json(event.response))


@post("/search", tags=["answers"], status_code=200, sync_to_thread=True,
      responses=errors(400, 401))  # fmt: skip
def search(data: JSONBody[SearchRequest], state: State) -> SearchResponse:
    """Rank sentences and passages for a query."""
    started = time.perf_counter()
    retriever = _runtime(state).answerer.retriever
    candidates = retriever.retrieve(data.query).candidates
    return SearchResponse(
        sentences=retriever.sentence_hits(candidates, data.top_k),
        passages=retriever.passages(candidates, data.top_k),
        timings_ms={"total": round((time.perf_counter() - started) * 1000, 1)},
    )


@get("/documents", tags=["documents"], sync_to_thread=False, responses=errors(401))
def list_documents(state: State) -> DocumentList:
    """List the indexed documents."""
    index = _runtime(state).answerer.index
    return DocumentList(
        [
            DocumentSummary(d.doc_id, d.title, len(d.text), len(index.sentences_of(d.doc_id)))
            for d in index.documents.values()
        ]
    )


@get("/documents/{doc_id:str}", tags=["documents"], sync_to_thread=False,
     responses=errors(401, 404))  # fmt: skip
def get_document(doc_id: FromPath[str], state: State) -> DocumentDetail:
    """A document's text and its sentences with offsets."""
    index = _runtime(state).answerer.index
    doc = index.documents.get(doc_id)
    if doc is None:
        raise NotFoundError(f"no document with doc_id {doc_id!r}")
    spans = [
        SentenceSpan(s.sentence_id, s.start, s.end, s.text) for s in index.sentences_of(doc_id)
    ]
    return DocumentDetail(doc.doc_id, doc.title, doc.text, spans)


def _require_admin_key(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Guard for document writes: an admin bearer key, and writes switched on at all."""
    settings: Settings = connection.app.state.settings
    if settings.read_only:
        raise ForbiddenError("this replica is read-only; send writes to the instance that writes")
    keys = settings.admin_key_list
    if not keys:
        raise ForbiddenError("document ingestion is disabled; set CITEQA_ADMIN_KEYS to enable it")
    if not _bearer_matches(connection, keys):
        raise NotAuthorizedException("missing or invalid admin key")


@post("/documents", tags=["documents"], status_code=201, guards=[_require_admin_key],
      responses=errors(400, 401, 403, 413, 507))  # fmt: skip
async def add_documents(request: Request[Any, Any, Any], state: State) -> IngestResult:
    """Add or replace documents, answering once the change is durable.

    The body is JSON ``{doc_id?, title?, text, metadata?}``, a batch
    ``{"documents": [...]}``, a text/markdown body (``?doc_id=&title=``), or
    ``multipart/form-data`` with .txt/.md files (each file's name gives its doc_id).
    """
    runtime = _runtime(state)
    content_type = request.headers.get("content-type", "")
    if content_type.lower().startswith("multipart/form-data"):
        form = await request.form()
        files = [
            (upload.filename, await upload.read())
            for _, upload in form.multi_items()
            if isinstance(upload, UploadFile)
        ]
        docs = parse_uploads(files, state.settings)
    else:
        body = await request.body()
        docs = parse_documents(body, content_type, dict(request.query_params), state.settings)
    return await upsert_documents(runtime, docs)


@delete("/documents/{doc_id:str}", tags=["documents"], status_code=200,
        guards=[_require_admin_key], responses=errors(401, 403, 404, 507))  # fmt: skip
async def remove_document(doc_id: FromPath[str], state: State) -> dict[str, str]:
    """Delete a document; later questions no longer see it."""
    await delete_document(_runtime(state), doc_id)
    return {"deleted": doc_id}


@get("/models", tags=["openai"], sync_to_thread=False, responses=errors(401, openai=True))
def models(state: State) -> ModelList:
    """The one model this service offers, in the OpenAI shape."""
    return model_list(state.settings.model_name, state.started)


@post("/chat/completions", tags=["openai"], status_code=200,
      responses={200: ResponseSpec(ChatCompletion, description="answer")}
      | errors(400, 401, 502, openai=True))  # fmt: skip
async def chat_completions(
    data: JSONBody[ChatCompletionRequest], state: State, request: Request[Any, Any, Any]
) -> ChatCompletion | ServerSentEvent:
    """OpenAI-compatible chat; the last user message is the question, earlier turns its context.

    A chat frontend's own background prompts (titles, tags, follow-up suggestions) get
    the plain LLM's reply, without retrieval or citations.
    """
    answerer = _runtime(state).answerer
    settings: Settings = state.settings
    model = data.model or settings.model_name
    include_usage = bool(data.stream_options and data.stream_options.include_usage)
    if is_frontend_task(data.messages):
        prompt = data.messages[-1].text
        content = await _while_connected(request, run_task(answerer.llm, data.messages, settings))
        if not data.stream:
            return task_completion(content, prompt, model)
        return _EventStream(
            _openai_stream(task_chunks(content, prompt, model, include_usage=include_usage))
        )
    answerer.check_capacity()
    question = await _while_connected(
        request, standalone_question(answerer.llm, data.messages, settings)
    )
    titles = {d.doc_id: d.title for d in answerer.index.documents.values()}
    sources = settings.chat_sources_block if data.sources_block is None else data.sources_block
    if not data.stream:
        response = await _while_connected(request, answerer.ask(question, data.top_k))
        return chat_completion(response, question, model, titles, sources=sources)
    cards = SourceCards(titles, settings.public_url or str(request.base_url))
    chunks = chat_chunks(
        answerer.ask_events(question, data.top_k), question, model, cards,
        sources=sources, include_usage=include_usage,
    )  # fmt: skip
    return _EventStream(_openai_stream(chunks))


async def _openai_stream(
    chunks: AsyncGenerator[ChatCompletionChunk, None],
) -> AsyncIterator[ServerSentEventMessage]:
    async with aclosing(chunks) as stream:
        try:
            async for chunk in stream:
                yield ServerSentEventMessage(data=_json(chunk))
        except CiteQAError as exc:
            yield ServerSentEventMessage(data=_json(_openai_error(exc.status_code, exc.message)))
    yield ServerSentEventMessage(data="[DONE]")


async def _check_json_body(request: Request[Any, Any, Any]) -> None:
    """Validate a JSON body strictly against the handler's type, with a 400 naming the field.

    Litestar's own parsing converts ``"5"`` to 5 and ``0`` to false, names the whole body
    instead of the field, and lets UnicodeDecodeError or RecursionError through as 500s.
    """
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method != "POST" or media.startswith(("multipart/", "text/")):
        return
    body = await request.body()
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(f"the body is not UTF-8 (byte {exc.start})") from None
    data = request.route_handler.parsed_fn_signature.parameters.get("data")
    kind = data.annotation if data is not None else Any
    try:
        raw = msgspec.json.decode(body)
    except RecursionError:
        raise InvalidRequestError("the JSON body nests too deeply") from None
    except msgspec.DecodeError:
        return  # malformed JSON is reported by the handler's own parsing
    try:
        msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        raise ValidationException(
            f"invalid request body: {exc}",
            extra=[{"key": _field_of(str(exc)), "message": str(exc), "source": "body"}],
        ) from None


_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_FIELD = re.compile(r"field `(?P<name>[^`]+)`")


def _field_of(message: str) -> str:
    """The field a msgspec validation message is about, as a dotted path ("body" for all)."""
    at, field = _AT.search(message), _FIELD.search(message)
    parts = [p for p in (at and at["path"], field and field["name"]) if p]
    return ".".join(parts) or "body"


def _require_api_key(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Guard for ``/v1``: when API keys are configured, a bearer token must match one."""
    settings: Settings = connection.app.state.settings
    if not settings.api_key_list:
        return
    # An admin key also reads, so a writer needs only one Authorization header.
    if not _bearer_matches(connection, settings.api_key_list + settings.admin_key_list):
        raise NotAuthorizedException("missing or invalid API key")


def _bearer_matches(connection: ASGIConnection[Any, Any, Any, Any], keys: tuple[str, ...]) -> bool:
    scheme, _sep, token = connection.headers.get("authorization", "").partition(" ")
    matched = False
    for key in keys:  # every key is compared, so timing does not reveal which matched
        matched |= secrets.compare_digest(token.strip().encode(), key.encode())
    return scheme.lower() == "bearer" and matched


_OPENAI_PATHS = ("/v1/chat/", "/v1/models")
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "not_found_error",
    429: "requests",
}
_OPENAI_CODES = {401: "invalid_api_key", 404: "not_found", 429: "rate_limit_exceeded",
                 503: "unavailable"}  # fmt: skip


def _openai_error(
    status: int, message: str, extra: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    param = next((str(e["key"]) for e in extra or [] if e.get("key")), None)
    if extra:
        message = "; ".join(f"{e.get('key', 'body')}: {e.get('message', message)}" for e in extra)
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {
        "error": {
            "message": message,
            "type": kind,
            "param": param,
            "code": _OPENAI_CODES.get(status),
        }
    }


def _error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    headers: dict[str, str] = {}
    if isinstance(exc, CiteQAError):
        status, detail, extra = exc.status_code, exc.message, None
        if isinstance(exc, BusyError):
            headers["Retry-After"] = str(exc.retry_after_s)
        elif status >= 500 and not isinstance(exc, NotReadyError):
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
    elif isinstance(exc, HTTPException):
        status, detail, extra = exc.status_code, exc.detail, exc.extra
        headers.update(exc.headers or {})
        if isinstance(exc, ValidationException) and not extra:
            extra = [{"message": detail, "key": "body"}]
        if isinstance(exc, TooManyRequestsException):
            detail = "too many requests from this client; retry after the time Retry-After gives"
            headers.setdefault("Retry-After", headers.get("RateLimit-Reset", "60"))
    else:
        log.exception("%s %s crashed", request.method, request.url.path)
        status, detail, extra = 500, "internal error", None
    if request.url.path.startswith(_OPENAI_PATHS):
        error = _openai_error(status, str(detail), extra if isinstance(extra, list) else None)
        return Response(error, status_code=status, media_type=MediaType.JSON, headers=headers)
    body: dict[str, Any] = {"status_code": status, "detail": detail}
    if extra:
        body["extra"] = extra
    return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)


class _BodyDeadline(ASGIMiddleware):
    """A request body must arrive within ``seconds``; a stalled one gets a 408.

    Only the body is timed: once it is complete, ``receive`` waits for a disconnect, as
    long as the response takes.
    """

    scopes = (ScopeType.HTTP,)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Run the request with a receive that times the body."""
        complete = False

        async def timed_receive() -> ReceiveMessage:
            nonlocal complete
            if complete:
                return await receive()
            try:
                with anyio.fail_after(self.seconds):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeoutError() from None
            complete = message["type"] != "http.request" or not message.get("more_body")
            return message

        await next_app(scope, timed_receive, send)


class _Metrics(PrometheusController):
    """``GET /metrics`` in the Prometheus text format; not part of the API's schema."""

    include_in_schema = False


def _without_paths(message: str, settings: Settings) -> str:
    """``message`` with the server's directories named by their setting, not their path."""
    for name in ("index_dir", "model_cache_dir"):
        path: Path = getattr(settings, name)
        for form in sorted({str(path.resolve()), str(path)}, key=len, reverse=True):
            message = message.replace(form, f"<{name}>")
    return message


def create_app(settings: Settings | None = None, *, loader: Loader = load_runtime) -> Litestar:
    """Build the app; the index and LLM load in the background after startup."""
    settings = settings or Settings()
    life = _Lifecycle()

    async def _load() -> None:
        try:
            life.runtime = await loader(settings)
            if settings.read_only:
                life.runtime.follow(settings.index_dir, settings.follow_interval_s)
        except CiteQAError as exc:  # expected failures carry a message fit for /readyz
            log.error("loading failed: %s", exc.message)
            life.failure = _without_paths(exc.message, settings)
        except Exception as exc:
            log.exception("loading failed")
            life.failure = _without_paths(str(exc) or type(exc).__name__, settings)

    async def on_startup() -> None:
        life.task = asyncio.create_task(_load())

    async def on_shutdown() -> None:
        if life.task is not None and not life.task.done():
            life.task.cancel()
        if life.runtime is not None:
            await life.runtime.aclose()

    v1 = Router(
        path="/v1",
        route_handlers=[
            ask,
            search,
            list_documents,
            get_document,
            add_documents,
            remove_document,
            models,
            chat_completions,
        ],
        guards=[_require_api_key],
    )
    prometheus = PrometheusConfig(
        app_name="citeqa", prefix="citeqa_http", group_path=True, exclude=["/metrics"]
    )
    middleware: list[Any] = [RequestLog(), prometheus.middleware]
    if settings.rate_limit_per_minute:
        # Per client address; probes, metrics and the schema are never limited.
        limit = RateLimitConfig(
            rate_limit=("minute", settings.rate_limit_per_minute),
            exclude=["^/$", "^/static/", "^/healthz", "^/readyz", "^/metrics", "^/schema"],
        )
        middleware.append(limit.middleware)
    middleware.append(_BodyDeadline(settings.body_timeout_s))
    return Litestar(
        route_handlers=[
            playground,
            create_static_files_router("/static", [_STATIC], include_in_schema=False),
            healthz,
            readyz,
            _Metrics,
            v1,
        ],
        cors_config=CORSConfig(
            allow_origins=list(settings.cors_origin_list),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
        if settings.cors_origin_list
        else None,
        middleware=middleware,
        state=State({"life": life, "settings": settings, "started": int(time.time())}),
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        exception_handlers={Exception: _error},
        before_request=_check_json_body,
        openapi_config=OpenAPIConfig(
            title="citeqa",
            version="0.1.0",
            path="/schema",
            render_plugins=[ScalarRenderPlugin(), CompletedJson()],
        ),
        request_max_body_size=settings.max_body_bytes,
        logging_config=None,  # logging is the CLI's (service/observe.py), not Litestar's
    )
