"""What an operator sees: request ids, one log event per request, Prometheus metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
import structlog
from litestar.testing import TestClient
from prometheus_client import REGISTRY
from pydantic import SecretStr
from structlog.testing import capture_logs

from service import configure_logging
from tests.conftest import QueuedUpstream, cma_reply

Client = Callable[..., TestClient[Any]]


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_each_request_gets_an_id_and_one_log_event_without_secrets(
    make_client: Client, upstream: QueuedUpstream
) -> None:
    client = make_client(api_keys=SecretStr("reader-key"))
    upstream.queue(cma_reply(upstream))
    question = "Which platform underpins the Korean models?"
    with capture_logs() as logs:
        given = client.post(
            "/v1/ask",
            json={"question": question},
            headers={"Authorization": "Bearer reader-key", "X-Request-ID": "trace-42"},
        )
        made = client.post("/v1/search", json={"query": "CMA"})  # no key: 401
    assert given.status_code == 200 and given.headers["x-request-id"] == "trace-42"
    assert made.status_code == 401 and len(made.headers["x-request-id"]) == 32
    events = [e for e in logs if e["event"] == "request"]
    assert [(e["route"], e["status"]) for e in events] == [("/v1/ask", 200), ("/v1/search", 401)]
    ask = events[0]
    assert ask["request_id"] == "trace-42" and ask["method"] == "POST"
    assert ask["abstained"] is False and ask["degraded"] is False
    assert ask["llm_ms"] >= 0 and ask["latency_ms"] >= ask["llm_ms"]
    assert ask["citations"] == 1
    logged = repr(logs)
    assert "reader-key" not in logged and question not in logged and "CMA" not in logged


def test_a_malformed_request_id_is_replaced(make_client: Client) -> None:
    given = "bad id\r\n" + "x" * 200
    response = make_client().get("/v1/documents", headers={"X-Request-ID": given.encode()})
    assert response.headers["x-request-id"] != given
    assert len(response.headers["x-request-id"]) == 32


def test_metrics_count_answers_abstentions_routes_and_the_index(
    make_client: Client, upstream: QueuedUpstream
) -> None:
    client = make_client()
    answered = _sample("citeqa_answers_total", mode="llm", outcome="answered", collection="*")
    refused = _sample("citeqa_abstentions_total", reason="llm_refused")
    upstream.queue(cma_reply(upstream), "NOT FOUND")
    client.post("/v1/ask", json={"question": "Which platform underpins the Korean models?"})
    client.post("/v1/ask", json={"question": "Which platform do the Korean models use?"})
    assert (
        _sample("citeqa_answers_total", mode="llm", outcome="answered", collection="*")
        == answered + 1
    )
    assert _sample("citeqa_abstentions_total", reason="llm_refused") >= refused + 1
    text = client.get("/metrics").text
    for needle in (
        'citeqa_http_request_duration_seconds_count{app_name="citeqa",method="POST",path="/v1/ask"',
        "citeqa_answer_seconds_count",
        "citeqa_first_text_seconds_count",
        'citeqa_llm_call_seconds_count{call="stream"}',
        "citeqa_llm_tokens_total",
        "citeqa_llm_queue_waiting 0.0",
        "citeqa_index_segments 1.0",
    ):
        assert needle in text, needle
    assert _sample("citeqa_index_sentences") > 10
    assert "/metrics" not in client.get("/schema/openapi.json").json()["paths"]


def test_serve_logs_are_json_lines_that_the_app_leaves_alone(
    make_client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging(json=True)
        client = make_client()  # starting the app must not replace the handlers
        client.get("/v1/documents", headers={"X-Request-ID": "json-1"})
        logging.getLogger("some.library").warning("plain %s", "stdlib")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        structlog.reset_defaults()
    request = next(e for e in lines if e.get("request_id") == "json-1")
    assert request["event"] == "request" and request["route"] == "/v1/documents"
    assert {"timestamp", "level", "logger"} <= set(request)
    assert any(e["event"] == "plain stdlib" and e["logger"] == "some.library" for e in lines)
