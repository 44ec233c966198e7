"""A real OpenAI-compatible upstream on a loopback port that misbehaves as told.

Modes: ``sleep`` (never answers), ``drip`` (one token every ``delay`` seconds), ``garbage``
(200 with SSE frames that are not chat chunks), ``fail`` (500). ``open`` counts the calls
whose client has not gone yet.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn


class LoopbackUpstream:
    """The server's state; the tests set ``mode`` and ``delay`` and read ``open``."""

    def __init__(self) -> None:
        self.mode = "drip"
        self.delay = 0.3
        self.reply = "Renault and Geely signed a memorandum. " * 20
        self.calls = 0
        self.open = 0
        self.url = ""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.calls += 1
        self.open += 1
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        try:
            await self._respond(json.loads(body or b"{}"), send, gone)
        finally:
            watcher.cancel()
            self.open -= 1

    async def _respond(self, request: dict[str, Any], send: Any, gone: asyncio.Event) -> None:
        if self.mode == "sleep":
            await gone.wait()
            return
        if self.mode == "fail":
            await _send(
                send, 500, b'{"error": {"message": "upstream exploded"}}', "application/json"
            )
            return
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if self.mode == "garbage":
            frames = [b'data: {"choices": [{"delta": "oops"}]}\n\n', b"data: <html>\n\n"]
        else:
            frames = [
                b"data: " + json.dumps({"choices": [{"delta": {"content": word + " "}}]}).encode()
                + b"\n\n"
                for word in self.reply.split()
            ]  # fmt: skip
        for frame in frames:
            if gone.is_set():
                return
            await send({"type": "http.response.body", "body": frame, "more_body": True})
            try:
                await asyncio.wait_for(gone.wait(), self.delay)
                return
            except TimeoutError:
                pass
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


async def _send(send: Any, status: int, body: bytes, media: str) -> None:
    headers = [(b"content-type", media.encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def run_in_thread(app: Any) -> tuple[str, Callable[[], None]]:
    """Serve an ASGI app with uvicorn on a free loopback port; its base URL and a stop."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)

    return f"http://127.0.0.1:{port}", stop


def serve() -> Iterator[LoopbackUpstream]:
    """Run a :class:`LoopbackUpstream` on a free port until the generator is closed."""
    upstream = LoopbackUpstream()
    base, stop = run_in_thread(upstream)
    upstream.url = base + "/v1"
    yield upstream
    stop()
