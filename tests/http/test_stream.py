"""Streaming /v1/ask over Server-Sent Events, against a real loopback server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from httpx_sse import connect_sse

from service import ABSTAIN_TEXT
from tests.conftest import (
    ARTICLE_TEXT,
    CMA,
    QueuedUpstream,
    Scripted,
    ask_events,
    label_of,
    shown_text,
)

KOREA = "Which platform underpins the Korean models?"
Server = Callable[..., str]


def _without_timings(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "timings_ms"}


def test_stream_sends_deltas_then_citations_then_done_equal_to_the_plain_answer(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server()
    cma = label_of(upstream, "Lingke")
    jointly = label_of(upstream, "Jointly develop models suitable")
    reply = (
        f"The Korean models use the Lingke energy saving platform CMA {cma}. "
        f"The two companies develop models suitable for the Korean market {jointly}."
    )
    upstream.queue(reply, reply)
    events = ask_events(base, {"question": KOREA})
    plain = httpx.post(base + "/v1/ask", json={"question": KOREA}, timeout=30).json()

    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "done" and kinds.count("done") == 1
    assert kinds[0] == "answer.delta" and "citation" in kinds
    first_citation = kinds.index("citation")
    assert "answer.delta" in kinds[:first_citation]  # its claim's text came first
    done = events[-1][1]
    assert _without_timings(done) == _without_timings(plain)
    citations = [data for kind, data in events if kind == "citation"]
    assert [c["number"] for c in citations] == list(range(1, len(done["citations"]) + 1))
    for sent, final in zip(citations, done["citations"], strict=True):
        assert {k: v for k, v in sent.items() if k != "number"} == final
        assert ARTICLE_TEXT[sent["start"] : sent["end"]] == sent["text"]
    assert CMA in citations[0]["text"]
    text = shown_text(events)
    assert "[S" not in text and "[1]" in text and "CMA" in text
    assert text == done["answer"]


def test_stream_of_an_unverifiable_reply_sends_no_citation(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server()
    upstream.queue("Geely's annual revenue is 10 billion yuan [S4].")
    events = ask_events(base, {"question": "What is Geely Holding Group's annual revenue?"})
    assert "citation" not in [kind for kind, _ in events]
    assert events[-1][0] == "done" and events[-1][1]["answerable"] is False


def test_stream_holds_back_a_refusal(live_server: Server, upstream: QueuedUpstream) -> None:
    base = live_server()
    upstream.queue("NOT FOUND")
    events = ask_events(base, {"question": "In which factory will the hybrid cars be built?"})
    assert events == [
        ("answer.delta", {"text": ABSTAIN_TEXT}),
        ("done", {**events[-1][1], "answer": ABSTAIN_TEXT, "answerable": False, "citations": []}),
    ]


def test_stream_reports_an_llm_failure_and_still_finishes(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server()
    upstream.queue(*[httpx.ConnectError("down")] * 3)
    events = ask_events(base, {"question": KOREA})
    kinds = [kind for kind, _ in events]
    assert kinds == ["answer.delta", "citation", "done"]
    assert events[-1][1]["degraded"] is True and CMA in events[1][1]["text"]


def test_stream_extractive_mode(live_server: Server) -> None:
    events = ask_events(live_server(), {"question": KOREA, "answer_mode": "extractive"})
    assert [kind for kind, _ in events] == ["answer.delta", "citation", "done"]


def test_stream_with_bad_input_is_a_plain_400(live_server: Server) -> None:
    response = httpx.post(live_server() + "/v1/ask", json={"question": "", "stream": True})
    assert response.status_code == 400
    assert "question" in str(response.json()["extra"])


def test_a_dropped_connection_stops_the_upstream_generation(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server()
    upstream.token_delay = 0.05
    cma = label_of(upstream, "Lingke")
    long_reply = " ".join(["The Korean models use the Lingke energy saving platform CMA"] * 20)
    upstream.queue(f"{long_reply} {cma}.")
    with (
        httpx.Client(base_url=base, timeout=30) as client,
        connect_sse(client, "POST", "/v1/ask", json={"question": KOREA, "stream": True}) as source,
    ):
        for sse in source.iter_sse():
            assert sse.event == "answer.delta"
            break  # the user closes the tab
    deadline = time.monotonic() + 5
    while upstream.closed_early == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.closed_early == 1


def test_an_unverifiable_streamed_reply_is_followed_by_the_sentence_that_answers(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server()
    upstream.queue("The platform is called Zephyr and it is made by robots [S2].")
    events = ask_events(
        base, {"question": "Which energy saving platform will the Korean models use?"}
    )
    text = shown_text(events)
    done = events[-1][1]
    assert done["mode"] == "extractive" and CMA in done["citations"][0]["text"]
    assert text == done["answer"]  # only the answer of record was shown, not the model's
    assert [kind for kind, _ in events][-2:] == ["citation", "done"]


def test_a_label_split_across_tokens_still_cites_and_shows_no_label(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server()
    cma = label_of(upstream, "Lingke")
    upstream.queue(
        Scripted.dripped(f"The Korean models use the Lingke energy saving platform CMA {cma}.", 3)
    )
    events = ask_events(base, {"question": KOREA})
    done = events[-1][1]
    assert shown_text(events) == done["answer"]
    assert done["answer"] == "Lingke energy saving platform CMA [1]."
    assert CMA in done["citations"][0]["text"]
    assert [kind for kind, _ in events] == ["answer.delta", "citation", "done"]


def test_no_text_of_a_rejected_claim_is_ever_sent(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server()
    cma = label_of(upstream, "Lingke")
    first = label_of(upstream, "memorandum of understanding")
    upstream.queue(
        Scripted.dripped(
            f"Geely's CEO Liu Yimin signed the memorandum {first}. "
            f"The Korean models use the Lingke energy saving platform CMA {cma}. "
            f"PWNED {first}.",
            2,
        )
    )
    events = ask_events(base, {"question": KOREA})
    sent = json.dumps([data for kind, data in events if kind != "done"])
    assert "Liu" not in sent and "Yimin" not in sent and "PWNED" not in sent
    done = events[-1][1]
    assert shown_text(events) == done["answer"]
    assert done["answer"] == "Lingke energy saving platform CMA [1]."


def test_a_reply_of_only_rejected_claims_streams_only_the_abstention(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server()
    upstream.queue(Scripted.dripped("Geely's CEO is Liu Yimin [S2].", 2))
    events = ask_events(base, {"question": "Who is Geely's CEO?"})
    assert [kind for kind, _ in events] == ["answer.delta", "done"]
    assert shown_text(events) == ABSTAIN_TEXT == events[-1][1]["answer"]
    assert events[-1][1]["answerable"] is False


def test_an_upstream_that_breaks_off_mid_reply_keeps_only_what_was_verified(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server()
    cma = label_of(upstream, "Lingke")
    reply = Scripted.dripped(
        f"The Korean models use the Lingke energy saving platform CMA {cma}. "
        "Renault will also build the cars in Busan",
        4,
    )
    reply.break_after = len(reply.tokens) - 2
    upstream.queue(reply)
    events = ask_events(base, {"question": KOREA})
    kinds = [kind for kind, _ in events]
    assert kinds == ["answer.delta", "citation", "error", "done"]
    done = events[-1][1]
    assert done["degraded"] is True and done["answerable"] is True
    assert shown_text(events) == done["answer"]
    assert "Busan" not in json.dumps(events) and "Renault will" not in shown_text(events)


def test_a_break_before_anything_was_verified_shows_only_the_fallback(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server()
    upstream.queue(Scripted.dripped("The Korean models use the Zephyr", 3, break_after=5))
    events = ask_events(base, {"question": KOREA})
    assert [kind for kind, _ in events] == ["answer.delta", "citation", "done"]
    done = events[-1][1]
    assert done["degraded"] is True and done["mode"] == "extractive"
    assert shown_text(events) == done["answer"] and "Zephyr" not in done["answer"]
