"""What an operator sees: Prometheus metrics, logging, and what a request's log event holds.

The HTTP layer logs one event per request (``service/http/middleware.py``); the answering
pipeline adds what it knows through :func:`note` (LLM time, abstained, degraded). Keys,
questions and document text are never logged.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import structlog
from prometheus_client import Counter, Gauge, Histogram

from service.schemas import AskResponse

__all__ = [
    "INDEX_DOCUMENTS",
    "INDEX_SEGMENTS",
    "INDEX_SENTENCES",
    "LLM_CALL_SECONDS",
    "LLM_RUNNING",
    "LLM_TOKENS",
    "LLM_WAITING",
    "SHARD_UP",
    "collecting",
    "configure_logging",
    "elapsed_ms",
    "note",
    "record_answer",
]

_SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 60.0)

# "collection": the collections a question was asked in ("*": every one), never the key.
ANSWERS = Counter("citeqa_answers_total", "Answers given", ["mode", "outcome", "collection"])
ABSTENTIONS = Counter("citeqa_abstentions_total", "Answers withheld, by reason", ["reason"])
DEGRADED = Counter("citeqa_degraded_total", "Answers degraded because the LLM failed")
ANSWER_SECONDS = Histogram("citeqa_answer_seconds", "Time to a whole answer", buckets=_SECONDS)
FIRST_TEXT_SECONDS = Histogram(
    "citeqa_first_text_seconds", "Time to the first verified text of an answer", buckets=_SECONDS
)
LLM_SECONDS = Histogram("citeqa_answer_llm_seconds", "LLM time of one answer", buckets=_SECONDS)
LLM_CALL_SECONDS = Histogram(
    "citeqa_llm_call_seconds", "One LLM call, once it runs", ["call"], buckets=_SECONDS
)
LLM_TOKENS = Counter("citeqa_llm_tokens_total", "Tokens the LLM streamed back")
LLM_RUNNING = Gauge("citeqa_llm_running", "LLM calls running")
LLM_WAITING = Gauge("citeqa_llm_queue_waiting", "LLM calls waiting for a slot")
INDEX_DOCUMENTS = Gauge("citeqa_index_documents", "Documents in the served index")
INDEX_SENTENCES = Gauge("citeqa_index_sentences", "Sentences in the served index")
INDEX_SEGMENTS = Gauge("citeqa_index_segments", "Segments of the served index")
SHARD_UP = Gauge("citeqa_shard_up", "1 if the shard answered its last call in time", ["shard"])

_REQUEST: ContextVar[dict[str, Any] | None] = ContextVar("citeqa_request", default=None)


def note(**fields: Any) -> None:
    """Add fields to the current request's log event (no-op outside a request)."""
    summary = _REQUEST.get()
    if summary is not None:
        summary.update(fields)


def record_answer(response: AskResponse, collection: str = "*") -> None:
    """Count an answer in the metrics and note it on the request's log event.

    ``collection``: the collections it was asked in, as ``Scope.label`` names them.
    """
    outcome = "answered" if response.answerable else "abstained"
    ANSWERS.labels(mode=response.mode, outcome=outcome, collection=collection).inc()
    if response.abstained_because:
        ABSTENTIONS.labels(reason=response.abstained_because).inc()
    if response.degraded:
        DEGRADED.inc()
    timings = response.timings_ms
    for histogram, key in (
        (ANSWER_SECONDS, "total"),
        (LLM_SECONDS, "llm"),
        (FIRST_TEXT_SECONDS, "first_text"),
    ):
        if key in timings:
            histogram.observe(timings[key] / 1000)
    note(
        abstained=not response.answerable,
        abstained_because=response.abstained_because,
        degraded=response.degraded,
        llm_ms=timings.get("llm"),
        citations=len(response.citations),
    )


@contextmanager
def collecting() -> Iterator[dict[str, Any]]:
    """Collect what :func:`note` adds, for one request's log event."""
    summary: dict[str, Any] = {}
    token = _REQUEST.set(summary)
    try:
        yield summary
    finally:
        _REQUEST.reset(token)


def elapsed_ms(since: float) -> float:
    """Milliseconds since ``since`` (a ``time.perf_counter()`` reading), to 0.1 ms."""
    return round((time.perf_counter() - since) * 1000, 1)


def configure_logging(*, level: int = logging.INFO, json: bool = True) -> None:
    """Send structlog and standard-library logs to stderr, as JSON lines or for a console."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,  # tests capture logs after the CLI configured them
    )
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
