"""The OpenAI-compatible API, driven by the official openai package on a loopback port."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from pydantic import SecretStr

from service import Citation
from service.http import sources_block
from tests.conftest import (
    ARTICLE_TEXT,
    ARTICLE_TITLE,
    CMA,
    QueuedUpstream,
    Scripted,
    chat,
    cma_reply,
    label_of,
)

pytestmark = pytest.mark.anyio
KOREA = "Which platform underpins the Korean models?"
Server = Callable[..., str]
Clients = Callable[..., openai.OpenAI]


@pytest.fixture
def clients() -> Iterator[Callable[..., openai.OpenAI]]:
    """Sync OpenAI clients, closed after the test."""
    made: list[openai.OpenAI] = []

    def make(base: str, key: str = "unused") -> openai.OpenAI:
        made.append(openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0))
        return made[-1]

    yield make
    for client in made:
        client.close()


def _assert_verbatim(citations: list[dict[str, Any]]) -> None:
    assert citations
    for c in citations:
        assert ARTICLE_TEXT[c["start"] : c["end"]] == c["text"]


def test_models_lists_the_service_model_and_one_per_collection(
    clients: Clients, live_server: Server
) -> None:
    client = clients(live_server(), "unused")
    every, default = client.models.list().data
    assert every.id == "citeqa" and every.object == "model" and every.owned_by == "citeqa"
    assert default.id == "citeqa/default"  # the bundled article's collection
    assert 1_700_000_000 < every.created < 4_000_000_000  # unix seconds


def test_sync_completion_carries_markers_sources_and_structured_citations(
    clients: Clients, live_server: Server, upstream: QueuedUpstream
) -> None:
    client = clients(live_server(), "unused")
    upstream.queue(cma_reply(upstream))
    completion = client.chat.completions.create(
        model="citeqa",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": KOREA}],
        temperature=0.2,  # unknown-to-us fields are ignored
        user="someone",
    )
    assert completion.object == "chat.completion"
    (choice,) = completion.choices
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    content = choice.message.content or ""
    answer, sources = content.split("\n\nSources:\n")
    assert "CMA" in answer and "[1]" in answer
    assert sources.startswith('[1] "Renault group and Geely Holding will be based on Lingke')
    assert sources.endswith(f'." ({ARTICLE_TITLE}, renault-geely-mou [1158, 1330))')
    citations = (choice.message.model_extra or {})["citations"]
    _assert_verbatim(citations)
    assert CMA in citations[0]["text"]
    assert completion.usage is not None and completion.usage.total_tokens > 0


async def test_async_streaming_sends_role_content_citation_events_and_a_final_chunk(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server()
    upstream.queue(cma_reply(upstream))
    async with openai.AsyncOpenAI(base_url=base + "/v1", api_key="unused") as client:
        stream = await client.chat.completions.create(
            model="citeqa",
            messages=[{"role": "user", "content": KOREA}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "CMA" in content and "[1]" in content and "\n\nSources:\n[1] " in content
    events = [(c.model_extra or {}).get("event") for c in chunks]
    (event,) = [e for e in events if e]
    assert event["type"] == "citation"
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    (final,) = finals
    assert final.choices[0].finish_reason == "stop"
    (citation,) = (final.model_extra or {})["citations"]
    _assert_verbatim([citation])
    assert event["data"] == {
        "document": [citation["text"]],
        "metadata": [
            {"source": citation["sentence_id"], "name": ARTICLE_TITLE,
             "doc_id": "renault-geely-mou", "sentence_id": citation["sentence_id"],
             "start": citation["start"], "end": citation["end"]}
        ],
        "source": {"id": citation["sentence_id"], "name": ARTICLE_TITLE,
                   "url": base + "/v1/documents/renault-geely-mou"},
        "distances": [citation["score"]],
    }  # fmt: skip
    assert chunks[-1].choices == [] and chunks[-1].usage is not None  # include_usage honoured
    assert all(c.usage is None for c in chunks[:-1])
    # The card comes after the text it supports, the footnotes after both.
    first_event = events.index(event)
    assert any(c.choices and c.choices[0].delta.content for c in chunks[1:first_event])
    assert "Sources:" not in content.split("\n\nSources:")[0]


def test_sync_streaming_without_usage(
    clients: Clients, live_server: Server, upstream: QueuedUpstream
) -> None:
    client = clients(live_server(), "unused")
    upstream.queue(cma_reply(upstream))
    chunks = list(
        client.chat.completions.create(
            model="citeqa", messages=[{"role": "user", "content": KOREA}], stream=True
        )
    )
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(not (c.model_extra or {}).get("usage") for c in chunks)


async def test_async_non_streaming_abstains_without_sources(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    upstream.queue("NOT FOUND")
    async with openai.AsyncOpenAI(base_url=live_server() + "/v1", api_key="unused") as client:
        completion = await client.chat.completions.create(
            model="citeqa",
            messages=[
                {"role": "user", "content": "In which factory will the hybrid cars be built?"}
            ],
        )
    message = completion.choices[0].message
    assert message.content == "The documents do not answer this question."
    assert (message.model_extra or {})["citations"] == []


def test_follow_up_is_rewritten_from_the_conversation(
    clients: Clients, live_server: Server, upstream: QueuedUpstream
) -> None:
    client = clients(live_server(), "unused")
    rewritten = "Which platform underpins the models for the Korean market?"
    upstream.queue(rewritten, cma_reply(upstream))
    completion = client.chat.completions.create(
        model="citeqa",
        messages=[
            {"role": "user", "content": "Which markets are key for the cooperation?"},
            {"role": "assistant", "content": "China and South Korea [1]."},
            {"role": "user", "content": "and the platform in Korea?"},
        ],
    )
    condense, answer = upstream.requests[-2:]
    assert "and the platform in Korea?" in condense["messages"][-1]["content"]
    assert "Which markets are key" in condense["messages"][-1]["content"]
    assert answer["messages"][-1]["content"] == f"Question: {rewritten}"
    citations = (completion.choices[0].message.model_extra or {})["citations"]
    assert CMA in citations[0]["text"]


def test_bad_request_gets_the_openai_error_shape(clients: Clients, live_server: Server) -> None:
    client = clients(live_server(), "unused")
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="citeqa", messages=[])
    error = raised.value.body
    assert isinstance(error, dict)
    assert error["type"] == "invalid_request_error" and error["param"] == "messages"
    assert set(error) == {"message", "type", "param", "code"}
    with pytest.raises(openai.BadRequestError, match="user message"):
        client.chat.completions.create(
            model="citeqa", messages=[{"role": "system", "content": "only a system prompt"}]
        )


def test_malformed_json_gets_the_openai_error_shape(live_server: Server) -> None:
    response = httpx.post(
        live_server() + "/v1/chat/completions",
        content=b"{nope",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_api_keys_guard_v1_but_not_health(
    clients: Clients, live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server(api_keys=SecretStr("key-one, key-two"))
    with pytest.raises(openai.AuthenticationError) as raised:
        clients(base, "wrong").models.list()
    assert raised.value.body == {
        "message": "missing or invalid API key",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    assert httpx.post(base + "/v1/ask", json={"question": KOREA}).status_code == 401
    assert (
        httpx.get(base + "/v1/documents", headers={"Authorization": "key-two"}).status_code == 401
    )
    ok = httpx.get(base + "/v1/documents", headers={"Authorization": "Bearer key-two"})
    assert ok.status_code == 200
    models = clients(base, "key-one").models.list()
    assert models.data[0].id == "citeqa"
    assert httpx.get(base + "/healthz").status_code == 200
    assert httpx.get(base + "/readyz").status_code == 200


def test_stream_frames_end_with_done(live_server: Server, upstream: QueuedUpstream) -> None:
    base = live_server()
    upstream.queue(cma_reply(upstream))
    with httpx.stream(
        "POST",
        base + "/v1/chat/completions",
        json={"model": "citeqa", "messages": [{"role": "user", "content": KOREA}], "stream": True},
    ) as response:
        lines = [ln for ln in response.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    first = json.loads(lines[0][6:])
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}


def _streamed_content(base: str, messages: list[dict[str, str]], **extra: Any) -> str:
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
    with client:
        chunks = list(
            client.chat.completions.create(
                model="citeqa",
                messages=messages,
                stream=True,
                extra_body=extra,  # type: ignore[arg-type]
            )
        )
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize(
    ("question", "reply"),
    [
        (KOREA, "The Korean models use the Lingke energy saving platform CMA {cma}."),
        (KOREA, "The CEO Liu Yimin chose it {cma}. The models use the platform CMA {cma}."),
        ("Who is Geely's CEO?", "Geely's CEO is Liu Yimin {cma}."),
        ("Who is Geely's chairman?", "NOT FOUND"),
        ("What is the correct answer?", "PWNED {cma}"),
    ],
)
def test_streamed_and_plain_chat_replies_are_identical(
    live_server: Server, upstream: QueuedUpstream, question: str, reply: str
) -> None:
    base = live_server()
    text = reply.format(cma=label_of(upstream, "Lingke"))
    upstream.queue(Scripted.dripped(text, 3), text)
    messages = [{"role": "user", "content": question}]
    streamed = _streamed_content(base, messages)
    plain = chat(base, messages).json()["choices"][0]["message"]["content"]
    assert streamed == plain
    assert "Liu" not in plain and "PWNED" not in plain


def test_the_sources_block_can_be_switched_off_per_request_and_per_server(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server()
    reply = cma_reply(upstream)
    upstream.queue(reply, reply)
    messages = [{"role": "user", "content": KOREA}]
    plain = chat(base, messages, sources_block=False).json()["choices"][0]["message"]
    assert plain["content"] == "Lingke energy saving platform CMA [1]."
    assert CMA in plain["citations"][0]["text"]  # the structured citations stay
    assert _streamed_content(base, messages, sources_block=False) == plain["content"]
    quiet = live_server(chat_sources_block=False)
    upstream.queue(reply)
    content = chat(quiet, messages).json()["choices"][0]["message"]["content"]
    assert "Sources:" not in content


def test_cards_of_one_document_carry_a_locator_and_a_unique_id(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server(public_url="https://qa.example.com")
    cma = label_of(upstream, "Lingke")
    employees = label_of(upstream, "employees")
    upstream.queue(
        f"The Korean models use the Lingke energy saving platform CMA {cma}. "
        f"Renault group has 18 10000 employees {employees}."
    )
    with httpx.stream(
        "POST",
        base + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": KOREA}], "stream": True},
        timeout=30,
    ) as response:
        lines = [json.loads(ln[6:]) for ln in response.iter_lines() if ln.startswith("data: {")]
    cards = [chunk["event"]["data"] for chunk in lines if "event" in chunk]
    citations = next(c["citations"] for c in lines if c.get("citations"))
    assert len(cards) == len(citations) == 2
    for card, citation in zip(cards, citations, strict=True):
        assert card["source"]["id"] == card["metadata"][0]["source"] == citation["sentence_id"]
        name = f"{ARTICLE_TITLE}, chars {citation['start']}-{citation['end']}"
        assert card["source"]["name"] == card["metadata"][0]["name"] == name
        assert card["source"]["url"] == "https://qa.example.com/v1/documents/renault-geely-mou"
    assert cards[0]["source"]["id"] != cards[1]["source"]["id"]


def test_sources_block_names_a_titled_document_then_its_id() -> None:
    citation = Citation("notes", "default", "notes:s1", 0, 18, "The plant  opens.", 0.9)
    block = sources_block([citation], {"notes": "Plant Notes"})
    assert block == '\n\nSources:\n[1] "The plant opens." (Plant Notes, notes [0, 18))'
    paged = Citation("paper", "default", "paper:s9", 4010, 4052, "The plant opens in May.", 0.9,
                     page=7)  # fmt: skip
    assert sources_block([paged], {"paper": "The Paper"}).endswith(
        "(The Paper, paper [4010, 4052), p. 7)"
    )


def test_chat_flags_a_degraded_answer(live_server: Server, upstream: QueuedUpstream) -> None:
    base = live_server()
    upstream.queue(*[httpx.ConnectError("down")] * 6)
    messages = [{"role": "user", "content": KOREA}]
    message = chat(base, messages).json()["choices"][0]["message"]
    assert message["degraded"] is True and CMA in message["citations"][0]["text"]
    with httpx.stream(
        "POST", base + "/v1/chat/completions", json={"messages": messages, "stream": True}
    ) as response:
        chunks = [json.loads(ln[6:]) for ln in response.iter_lines() if ln.startswith("data: {")]
    (final,) = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert final["degraded"] is True
