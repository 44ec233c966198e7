"""What a reliability probe found, each held: rate limits seen by the log, metrics and request
ids; probes answered while loading; a full disk said before any embedding; bad inputs refused."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from litestar.testing import TestClient
from pydantic import SecretStr
from structlog.testing import capture_logs

from service import Runtime, Settings, create_app, load_runtime
from tests.conftest import ROOT, HashingEmbedder, QueuedUpstream

Client = Callable[..., TestClient[Any]]
KOREA = {"question": "Which platform underpins the Korean models?", "answer_mode": "extractive"}


def test_a_rate_limited_request_is_logged_counted_and_identified_as_a_429(
    make_client: Client,
) -> None:
    client = make_client(rate_limit_per_minute=2)
    for _ in range(2):
        assert client.post("/v1/ask", json=KOREA).status_code == 200
    with capture_logs() as logs:
        limited = client.post("/v1/ask", json=KOREA)
    assert limited.status_code == 429 and limited.json()["status_code"] == 429
    assert limited.headers["x-request-id"] and int(limited.headers["retry-after"]) > 0
    assert 0 <= int(limited.headers["ratelimit-reset"]) <= 60
    (event,) = [e for e in logs if e["event"] == "request"]
    assert event["status"] == 429 and event["request_id"] == limited.headers["x-request-id"]
    metrics = client.get("/metrics").text
    assert 'path="/v1/ask",status_code="429"} 1.0' in metrics


def test_requests_while_loading_do_not_use_up_the_rate_limit(
    settings: Settings, hashing_embedder: HashingEmbedder, upstream: QueuedUpstream
) -> None:
    loaded = threading.Event()

    async def loader(s: Settings) -> Runtime:
        await anyio.to_thread.run_sync(loaded.wait)
        return await load_runtime(s, embedder=hashing_embedder, llm=upstream.model())

    app = create_app(settings.model_copy(update={"rate_limit_per_minute": 3}), loader=loader)
    with TestClient(app) as client:
        for _ in range(5):
            waiting = client.post("/v1/ask", json=KOREA)
            assert waiting.status_code == 503 and "retry-after" in waiting.headers
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.headers["retry-after"] == "10"
        loaded.set()
        deadline = time.monotonic() + 10
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [client.post("/v1/ask", json=KOREA).status_code for _ in range(4)] == [
            200, 200, 200, 429,
        ]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_probes_answer_from_the_first_second_of_a_real_load(tmp_path: Path) -> None:
    """``citeqa serve`` loads the real embedder and builds the index off the event loop."""
    port = _free_port()
    env = {
        **os.environ,
        "CITEQA_INDEX_DIR": str(tmp_path / "index"),
        "CITEQA_LLM_BASE_URL": "http://127.0.0.1:9/v1",  # nothing there: no warm-up to wait on
        "CITEQA_LLM_RETRIES": "0",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        seen: list[tuple[str, int, str | None]] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                live = httpx.get(f"http://127.0.0.1:{port}/livez", timeout=1)
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            seen.append((live.text, ready.status_code, ready.headers.get("retry-after")))
            if ready.status_code == 200:
                break
            time.sleep(0.2)
        assert seen and seen[-1][1] == 200, seen[-3:]
        loading = [s for s in seen if s[1] == 503]
        # Several probes were answered while the embedder and index loaded, not one at the end.
        assert len(loading) >= 3 and all(r == "10" for _, _, r in loading)
        assert all('"ok"' in live for live, _, _ in seen)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_write_the_disk_cannot_hold_is_refused_before_it_is_embedded(
    make_client: Client, monkeypatch: pytest.MonkeyPatch, hashing_embedder: HashingEmbedder
) -> None:
    import shutil

    client = make_client(admin_keys=SecretStr("admin-1"))
    encoded: list[int] = []
    encode = hashing_embedder.encode

    def counting(texts: Any, **kw: Any) -> Any:
        encoded.append(len(texts))
        return encode(texts, **kw)

    monkeypatch.setattr(hashing_embedder, "encode", counting)
    real = shutil.disk_usage

    def nearly_full(path: Any) -> Any:
        usage = real(path)
        return usage._replace(free=65 * 2**20)  # past the 64 MiB margin, short of the write

    monkeypatch.setattr(shutil, "disk_usage", nearly_full)
    text = "The plant in Ningbo makes batteries for the new hybrid models every day. " * 3000
    response = client.post(
        "/v1/documents",
        json={"doc_id": "big", "text": text},
        headers={"Authorization": "Bearer admin-1"},
    )
    assert response.status_code == 507 and "MiB free" in response.json()["detail"]
    assert encoded == []  # refused before any embedding
    assert "big" not in {d["doc_id"] for d in client.get("/v1/documents").json()["documents"]}


@pytest.mark.parametrize(
    ("body", "headers", "status", "says"),
    [
        (b'{"question": "Which platform?"}', {"content-type": "text/plain"}, 415, "must be JSON"),
        (
            b'{"question": "Which\\u0000 platform?"}',
            {"content-type": "application/json"},
            400,
            "question",
        ),
        (b'{"question": "   \\n "}', {"content-type": "application/json"}, 400, "question"),
        (b'{"question": ""}', {"content-type": "application/json"}, 400, "question"),
    ],
)
def test_a_question_that_is_no_question_is_refused_naming_what_is_wrong(
    make_client: Client, body: bytes, headers: dict[str, str], status: int, says: str
) -> None:
    response = make_client().post("/v1/ask", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert says in response.text


def test_an_upload_whose_name_holds_a_path_is_refused(make_client: Client) -> None:
    client = make_client(admin_keys=SecretStr("admin-1"))
    response = client.post(
        "/v1/documents",
        files=[("file", ("../../evil2.txt", b"Nothing to see.", "text/plain"))],
        headers={"Authorization": "Bearer admin-1"},
    )
    assert response.status_code == 400 and "holds a path" in response.json()["detail"]
    assert "evil2" not in {d["doc_id"] for d in client.get("/v1/documents").json()["documents"]}
