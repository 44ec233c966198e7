"""Time and load bounds against misbehaving upstreams: deadlines, disconnects, a bounded queue."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import CMA, QueuedUpstream, ask_events, chat, cma_reply, shown_text
from tests.loopback_upstream import LoopbackUpstream

Server = Callable[..., str]
KOREA = "Which platform underpins the Korean models?"


def test_a_dripping_upstream_cannot_hold_an_answer_past_its_deadline(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server(llm_deadline_s=1.0)
    upstream.token_delay = 0.4  # one token every 0.4 s: the label would come after 5 s
    upstream.queue(cma_reply(upstream))
    started = time.monotonic()
    events = ask_events(base, {"question": KOREA})
    elapsed = time.monotonic() - started
    done = events[-1][1]
    assert elapsed < 3.0, elapsed
    assert done["degraded"] is True and done["mode"] == "extractive"
    assert CMA in done["citations"][0]["text"] and shown_text(events) == done["answer"]
    assert upstream.closed_early == 1  # the upstream call was closed, not left running


def test_past_the_queue_a_question_gets_503_with_retry_after_at_once(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server(llm_running=1, llm_max_waiting=0)
    upstream.token_delay = 0.2
    upstream.queue(cma_reply(upstream))
    first = threading.Thread(target=ask_events, args=(base, {"question": KOREA}))
    first.start()
    deadline = time.monotonic() + 5
    while not upstream.requests[1:] and time.monotonic() < deadline:
        time.sleep(0.01)  # until the first question holds the one LLM slot
    started = time.monotonic()
    busy = httpx.post(base + "/v1/ask", json={"question": KOREA}, timeout=10)
    assert time.monotonic() - started < 0.5
    assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
    assert "busy" in busy.json()["detail"]
    chat = httpx.post(
        base + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": KOREA}]},
        timeout=10,
    )
    assert chat.status_code == 503 and chat.json()["error"]["code"] == "unavailable"
    title = httpx.post(  # a frontend's background task is never refused: it waits its turn
        base + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "### Task:\nGenerate a title."}]},
        timeout=10,
    )
    assert title.status_code == 200
    asked = [r["messages"][-1]["content"] for r in upstream.requests]
    assert asked.index("### Task:\nGenerate a title.") > asked.index(f"Question: {KOREA}")
    extractive = httpx.post(base + "/v1/ask", json={"question": KOREA, "answer_mode": "extractive"})
    assert extractive.status_code == 200  # no LLM needed, no queue
    first.join(timeout=30)
    after = httpx.post(base + "/v1/ask", json={"question": KOREA}, timeout=30)
    assert after.status_code == 200


def test_past_its_rate_limit_a_client_gets_429_with_retry_after(live_server: Server) -> None:
    base = live_server(rate_limit_per_minute=3)
    statuses = [httpx.get(base + "/v1/documents").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = httpx.post(base + "/v1/search", json={"query": "CMA"})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert "too many requests" in limited.json()["detail"]
    chat = httpx.post(base + "/v1/chat/completions", json={"messages": []})
    assert chat.status_code == 429 and chat.json()["error"]["code"] == "rate_limit_exceeded"
    assert httpx.get(base + "/readyz").status_code == 200  # probes are never limited


def test_a_stalled_request_body_gets_408_and_frees_the_connection(live_server: Server) -> None:
    base = live_server(body_timeout_s=1.0)
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n" + b'{"query": "CM'
        )
        started = time.monotonic()
        reply = conn.recv(4096)
    assert time.monotonic() - started < 5
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b"did not arrive in time" in reply
    # The server goes on serving whole bodies.
    assert httpx.post(base + "/v1/search", json={"query": "CMA"}).status_code == 200


# Against a real upstream server on a loopback port.


def test_an_upstream_that_never_answers_is_cut_at_the_deadline(
    live_server: Server, loopback: LoopbackUpstream
) -> None:
    loopback.mode = "sleep"
    base = live_server(llm_base_url=loopback.url, llm_deadline_s=1.0)
    for body in ({"question": KOREA}, {"question": KOREA, "stream": True}):
        started = time.monotonic()
        if body.get("stream"):
            done = ask_events(base, body)[-1][1]
        else:
            done = httpx.post(base + "/v1/ask", json=body, timeout=30).json()
        assert time.monotonic() - started < 3.0
        assert done["degraded"] is True and CMA in done["citations"][0]["text"]
    answer = chat(base, [{"role": "user", "content": KOREA}]).json()
    assert answer["choices"][0]["message"]["degraded"] is True
    _until_closed(loopback)


def test_a_client_that_leaves_closes_the_upstream_call(
    live_server: Server, loopback: LoopbackUpstream
) -> None:
    loopback.mode, loopback.delay = "drip", 0.5  # a 60-token reply would take 30 s
    base = live_server(llm_base_url=loopback.url, llm_deadline_s=60.0)
    for path, body in (
        ("/v1/ask", {"question": KOREA}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": KOREA}]}),
    ):
        calls = loopback.calls
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(base + path, json=body, timeout=1.0)
        assert loopback.calls > calls  # the upstream call had started
        _until_closed(loopback)


@pytest.mark.parametrize("mode", ["garbage", "fail"])
def test_a_broken_upstream_gives_a_degraded_answer_not_an_error(
    live_server: Server, loopback: LoopbackUpstream, mode: str
) -> None:
    loopback.mode = mode
    base = live_server(llm_base_url=loopback.url, llm_retries=0)
    done = httpx.post(base + "/v1/ask", json={"question": KOREA}, timeout=30).json()
    assert done["degraded"] is True and done["mode"] == "extractive"
    streamed = ask_events(base, {"question": KOREA, "stream": True})
    assert streamed[-1][1]["degraded"] is True
    assert "exploded" not in str(streamed)  # the upstream's error body stays in the log
    answer = chat(base, [{"role": "user", "content": KOREA}]).json()
    assert answer["choices"][0]["message"]["degraded"] is True


def _until_closed(loopback: LoopbackUpstream, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while loopback.open and time.monotonic() < deadline:
        time.sleep(0.02)
    assert loopback.open == 0, "an upstream call was left open"
