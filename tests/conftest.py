"""Fakes at the seams: a hashing embedder and a queued OpenAI-compatible upstream."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from httpx_sse import connect_sse
from litestar.testing import TestClient

from index import CorpusIndex, SentenceTransformerEmbedder, Vectors
from service import (
    OpenAIChatModel,
    Runtime,
    Settings,
    bundled_corpus,
    create_app,
    load_runtime,
)
from service.answering import terms
from tests.loopback_upstream import LoopbackUpstream, run_in_thread
from tests.loopback_upstream import serve as serve_loopback

ROOT = Path(__file__).resolve().parents[1]  # the repository
ARTICLE = bundled_corpus()
ARTICLE_TEXT = ARTICLE.read_text(encoding="utf-8")
# Its title comes from corpus/renault-geely-mou.meta.json, beside the text.
ARTICLE_TITLE = "Renault and Geely sign a memorandum on hybrid cars for China and South Korea"
CMA = "Renault group and Geely Holding will be based on Lingke energy saving platform CMA"


class HashingEmbedder:
    """Bag of stemmed words hashed into 64 dimensions: similar words, similar vectors."""

    model_id = "test/hashing-64"
    dim = 64

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> Vectors:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for term in terms(text):
                out[row, int(hashlib.md5(term.encode()).hexdigest(), 16) % self.dim] += 1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
        return out


@dataclass
class Scripted:
    """A reply streamed exactly as these tokens, breaking off after ``break_after`` of them.

    Real upstreams split ``[S3]`` across tokens and drop the connection mid-reply.
    """

    tokens: list[str]
    break_after: int | None = None
    # The first token's alternatives as (token, logprob), sent as OpenAI logprobs.
    first_top: list[tuple[str, float]] | None = None

    @classmethod
    def dripped(cls, reply: str, size: int = 2, break_after: int | None = None) -> Scripted:
        """The reply cut into tokens of ``size`` characters, labels split among them."""
        return cls([reply[i : i + size] for i in range(0, len(reply), size)], break_after)

    @property
    def text(self) -> str:
        return "".join(self.tokens[: self.break_after])


def sse_frames(tokens: list[str], first_top: list[tuple[str, float]] | None = None) -> list[bytes]:
    """The tokens as OpenAI chunk frames, then [DONE]."""
    frames = []
    for t in [t for t in tokens if t]:
        choice: dict[str, Any] = {"index": 0, "delta": {"content": t}}
        if first_top is not None and not frames:
            top = [{"token": tok, "logprob": lp} for tok, lp in first_top]
            choice["logprobs"] = {"content": [{"token": t, "logprob": 0.0, "top_logprobs": top}]}
        frames.append(b"data: " + json.dumps({"choices": [choice]}).encode() + b"\n\n")
    return [*frames, b"data: [DONE]\n\n"]


class SSEStream(httpx.AsyncByteStream):
    """A streamed upstream body that records whether the client closed it early."""

    def __init__(
        self, reply: str | Scripted, upstream: QueuedUpstream, *, counted: bool = True
    ) -> None:
        scripted = reply if isinstance(reply, Scripted) else Scripted(re.findall(r"\S*\s*", reply))
        self.frames = sse_frames(scripted.tokens, scripted.first_top)
        self.break_after = scripted.break_after
        self.upstream = upstream
        self.counted = counted  # whether closing it early counts in closed_early
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for frame in self.frames:
            if self.sent == self.break_after:
                raise httpx.RemoteProtocolError("peer closed connection mid-reply")
            self.sent += 1
            yield frame
            await asyncio.sleep(self.upstream.token_delay)

    async def aclose(self) -> None:
        if self.counted and self.sent < len(self.frames):
            self.upstream.closed_early += 1


def yes(phrase: str = "") -> Scripted:
    """The support judge's yes (P 0.9), followed by the shortest phrase that answers, if any."""
    tokens = ["yes", *([": ", *re.findall(r"\S*\s*", phrase)] if phrase else [])]
    return Scripted(tokens, first_top=[("yes", math.log(0.9)), ("no", math.log(0.1))])


YES = yes()
NO = Scripted(["no"], first_top=[("no", math.log(0.8)), ("yes", math.log(0.2))])


def _screened_text(request: dict[str, Any]) -> str | None:
    """The text an instruction-screen request asks about; None for any other request."""
    system = request["messages"][0]["content"]
    if not system.startswith(("You classify one sentence", "You check messages")):
        return None
    return str(request["messages"][-1]["content"])


class QueuedUpstream:
    """An OpenAI-compatible upstream at the transport: replies are queued, requests recorded."""

    def __init__(self) -> None:
        self.replies: list[str | Scripted | int | Exception] = []
        self.requests: list[dict[str, Any]] = []
        self.token_delay = 0.0
        self.closed_early = 0
        # The instruction screen's verdicts (prompts/screen_*.md) come from here, not the
        # queue, so that tests queue only answers and judgements.
        self.screen: Callable[[str], str | Scripted | int | Exception] = lambda text: (
            YES if "PWNED" in text or "ignore" in text.lower() else NO
        )

    def queue(self, *replies: str | Scripted | int | Exception) -> None:
        self.replies.extend(replies)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(json.loads(request.content))
        screened = _screened_text(self.requests[-1])
        if screened is not None:
            reply: str | Scripted | int | Exception = self.screen(screened)
        else:
            reply = self.replies.pop(0) if self.replies else "NOT FOUND"
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, int):
            return httpx.Response(reply, json={"error": {"message": "upstream trouble"}})
        if self.requests[-1].get("stream"):
            return httpx.Response(
                200,
                headers={"content-type": "text/event-stream"},
                stream=SSEStream(reply, self, counted=screened is None),
            )
        if isinstance(reply, Scripted):
            if reply.break_after is not None:
                raise httpx.RemoteProtocolError("peer closed connection mid-reply")
            reply = reply.text
        return httpx.Response(
            200,
            json={
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": reply},
                     "finish_reason": "stop"}
                ],
            },
        )  # fmt: skip

    def model(self) -> OpenAIChatModel:
        return OpenAIChatModel(
            "http://upstream.test/v1",
            model="fake",
            retries=2,
            transport=httpx.MockTransport(self.handler),
        )

    @property
    def questions(self) -> list[str]:
        """The question of each chat request that was not a warm-up."""
        asked = [r["messages"][-1]["content"] for r in self.requests if not _screened_text(r)]
        return [q for q in asked if "warm-up" not in q]


Event = tuple[str, dict[str, Any]]


def ask_events(base: str, body: dict[str, Any]) -> list[Event]:
    """The (event, data) pairs of a streamed /v1/ask on a live server."""
    with (
        httpx.Client(base_url=base, timeout=30) as client,
        connect_sse(client, "POST", "/v1/ask", json={**body, "stream": True}) as source,
    ):
        assert source.response.headers["content-type"].startswith("text/event-stream")
        return [(sse.event, json.loads(sse.data)) for sse in source.iter_sse()]


def shown_text(events: list[Event]) -> str:
    """The answer text a streaming client displayed."""
    return "".join(data["text"] for kind, data in events if kind == "answer.delta")


def chat(base: str, messages: list[dict[str, str]], **extra: Any) -> httpx.Response:
    """POST /v1/chat/completions on a live server."""
    body = {"model": "citeqa", "messages": messages, **extra}
    return httpx.post(base + "/v1/chat/completions", json=body, timeout=30)


def cma_reply(upstream: QueuedUpstream) -> str:
    """The model's right reply to the Korean platform question, labelled as the prompt was."""
    label = label_of(upstream, "Lingke")
    return f"The Korean models use the Lingke energy saving platform CMA {label}."


def label_of(upstream: QueuedUpstream, needle: str) -> str:
    """The [S<n>] label the warm-up prompt gave the sentence containing ``needle``."""
    (system,) = [
        r["messages"][0]["content"]
        for r in upstream.requests
        if "warm-up" in r["messages"][-1]["content"]
    ][:1]
    (line,) = [ln for ln in system.splitlines() if needle in ln]
    return line.split("]")[0] + "]"


@pytest.fixture(scope="session")
def hashing_embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture(scope="session")
def real_embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


@pytest.fixture
def upstream() -> QueuedUpstream:
    return QueuedUpstream()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # A queued reply answers each question; the tests of the support judge turn it on.
    # The hashing embedder puts unrelated sentences at cosine 0.4, so only words make an
    # instruction suspect here.
    return Settings(
        corpus=[ARTICLE],
        index_dir=tmp_path / "index",
        support_judge=False,
        instruction_nearness=1.0,
    )


def article_sentence(index: CorpusIndex, needle: str) -> int:
    """Index of the one article sentence containing ``needle``."""
    (found,) = [i for i, s in enumerate(index.sentences) if needle in s.text]
    return found


def _wait_ready(client: TestClient[Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.01)
    raise AssertionError(f"not ready: {client.get('/readyz').json()}")


@pytest.fixture
def make_client(
    settings: Settings, hashing_embedder: HashingEmbedder, upstream: QueuedUpstream
) -> Iterator[Callable[..., TestClient[Any]]]:
    """A client on an app whose runtime uses the hashing embedder and the queued upstream."""
    clients: list[TestClient[Any]] = []

    def make(**overrides: Any) -> TestClient[Any]:
        client = TestClient(fake_app(settings, hashing_embedder, upstream, **overrides))
        client.__enter__()
        clients.append(client)
        _wait_ready(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def loopback() -> Iterator[LoopbackUpstream]:
    """A real upstream server on a loopback port that misbehaves as the test says."""
    yield from serve_loopback()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def fake_app(
    settings: Settings, embedder: HashingEmbedder, upstream: QueuedUpstream, **overrides: Any
) -> Any:
    """The real app over a runtime with the hashing embedder and the queued upstream.

    With ``llm_base_url`` among the overrides, the LLM is that server instead (no warm-up).
    """
    app_settings = settings.model_copy(update=overrides)

    async def loader(s: Settings) -> Runtime:
        if s.llm_base_url:
            llm = OpenAIChatModel(s.llm_base_url, model="fake", retries=s.llm_retries)
            return await load_runtime(s, embedder=embedder, llm=llm, warm=False)
        return await load_runtime(s, embedder=embedder, llm=upstream.model())

    return create_app(app_settings, loader=loader)


@pytest.fixture
def live_server(
    settings: Settings, hashing_embedder: HashingEmbedder, upstream: QueuedUpstream
) -> Iterator[Callable[..., str]]:
    """Serve the fake-runtime app with uvicorn on a loopback port; returns its base URL."""
    stops: list[Callable[[], None]] = []

    def start(**overrides: Any) -> str:
        base, stop = run_in_thread(fake_app(settings, hashing_embedder, upstream, **overrides))
        stops.append(stop)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/readyz").status_code == 200:
                    return base
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise AssertionError("live server did not become ready")

    yield start
    for stop in stops:
        stop()
