"""Time and load bounds against a misbehaving upstream: a deadline per answer, a bounded queue."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from tests.conftest import CMA, QueuedUpstream, ask_events, cma_reply, shown_text

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
    title = httpx.post(  # a frontend's background task is never refused, only left empty
        base + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "### Task:\nGenerate a title."}]},
        timeout=10,
    )
    assert title.status_code == 200 and title.json()["choices"][0]["message"]["content"] == ""
    extractive = httpx.post(base + "/v1/ask", json={"question": KOREA, "answer_mode": "extractive"})
    assert extractive.status_code == 200  # no LLM needed, no queue
    first.join(timeout=30)
    after = httpx.post(base + "/v1/ask", json={"question": KOREA}, timeout=30)
    assert after.status_code == 200
