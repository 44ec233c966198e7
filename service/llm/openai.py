"""The OpenAI-compatible chat client over httpx: streaming, logprobs, retries."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import httpx
from httpx_sse import EventSource, SSEError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from service.errors import LLMError, LLMUnavailableError
from service.llm.base import Message, Token

__all__ = ["OpenAIChatModel"]

log = logging.getLogger(__name__)


_TOP_LOGPROBS = 5


def _top_logprobs(choice: dict[str, Any]) -> tuple[tuple[str, float], ...]:
    """The alternatives to a chunk's first token, as the server reported them."""
    try:
        first = choice["logprobs"]["content"][0]
        return tuple((str(t["token"]), float(t["logprob"])) for t in first["top_logprobs"])
    except (KeyError, IndexError, TypeError, ValueError):
        return ()


class _Retryable(Exception):
    """A failure worth another try: connection trouble or a 5xx."""


class OpenAIChatModel:
    """Chat completions against any OpenAI-compatible ``/v1`` base URL."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.name = model
        self._retries = retries
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=5.0),
            transport=transport,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def _send(self, payload: dict[str, Any]) -> httpx.Response:
        """POST the request and return the open response, or raise by kind of failure."""
        headers = {"Accept": "text/event-stream"} if payload["stream"] else {}
        request = self._client.build_request(
            "POST", "chat/completions", json=payload, headers=headers
        )
        try:
            response = await self._client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
            raise _Retryable(f"cannot reach the LLM: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise LLMError(f"LLM request failed: {exc!r}") from exc
        if response.status_code >= 400:
            body = (await response.aread())[:200]
            await response.aclose()
            # The upstream's body stays in the log: it may echo the prompt or internals.
            log.warning("LLM answered %s: %r", response.status_code, body)
            if response.status_code >= 500:
                raise _Retryable(f"LLM answered {response.status_code}")
            raise LLMError(f"LLM rejected the request ({response.status_code})")
        return response

    async def _open(self, payload: dict[str, Any]) -> httpx.Response:
        """:meth:`_send`, retried on connection trouble and 5xx."""
        try:
            async for attempt in self._retrying():
                with attempt:
                    return await self._send(payload)
        except _Retryable as exc:
            raise LLMUnavailableError(str(exc)) from exc
        raise AssertionError("unreachable")  # pragma: no cover - tenacity reraises

    def _payload(
        self, messages: Sequence[Message], max_tokens: int, stream: bool
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.name,
            "messages": list(messages),
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": stream,
        }
        if stream:  # llama.cpp and vLLM both return these; others ignore them
            payload |= {"logprobs": True, "top_logprobs": _TOP_LOGPROBS}
        return payload

    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(self._retries + 1),
            wait=wait_exponential(multiplier=0.2, max=2.0),
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )

    async def complete(self, messages: Sequence[Message], *, max_tokens: int) -> str:
        """Return the assistant's reply to ``messages``, greedily decoded."""
        response = await self._open(self._payload(messages, max_tokens, stream=False))
        try:
            body = json.loads(await response.aread())
        except ValueError as exc:
            raise LLMError("LLM answered with invalid JSON") from exc
        except httpx.HTTPError as exc:
            raise LLMUnavailableError(f"LLM answer broke off: {exc!r}") from exc
        finally:
            await response.aclose()
        try:
            content = body["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise LLMError("LLM answer has no choices[0].message.content") from exc
        return str(content or "")

    async def stream(
        self, messages: Sequence[Message], *, max_tokens: int
    ) -> AsyncGenerator[Token, None]:
        """Yield the reply's text as the server generates it.

        Only opening the stream is retried: once text has been yielded, a failure
        is raised, not hidden by a second, different reply. Closing this iterator
        early closes the upstream connection, which stops generation there.
        """
        response = await self._open(self._payload(messages, max_tokens, stream=True))
        readable = False  # a 200 whose events are none of them chat chunks is a failure
        try:
            async for sse in EventSource(response).aiter_sse():
                if sse.data.strip() == "[DONE]":
                    break
                try:
                    choice = json.loads(sse.data)["choices"][0]
                    delta = choice.get("delta") or {}
                    text = delta.get("content")
                except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                    if "error" in sse.data:
                        log.warning("LLM stream failed: %s", sse.data[:200])
                        raise LLMError("LLM stream failed with an error event") from None
                    continue
                readable = True
                if text:
                    yield Token(str(text), _top_logprobs(choice))
            if not readable:
                raise LLMError("LLM stream held no chat completion chunks")
        except (httpx.HTTPError, SSEError) as exc:
            raise LLMUnavailableError(f"LLM stream broke: {exc!r}") from exc
        finally:
            await response.aclose()
