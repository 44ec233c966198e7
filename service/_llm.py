"""The answer-generator seam and its OpenAI-compatible chat client over httpx."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from service._errors import LLMError, LLMUnavailableError

__all__ = ["ChatModel", "OpenAIChatModel"]

log = logging.getLogger(__name__)

Message = dict[str, str]


class ChatModel(Protocol):
    """Anything that completes a chat; ``name`` is reported to clients."""

    name: str

    async def complete(self, messages: Sequence[Message], *, max_tokens: int) -> str: ...


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

    async def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._client.post("chat/completions", json=payload)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
            raise _Retryable(f"cannot reach the LLM: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise LLMError(f"LLM request failed: {exc!r}") from exc
        if response.status_code >= 500:
            raise _Retryable(f"LLM answered {response.status_code}")
        if response.status_code >= 400:
            raise LLMError(
                f"LLM rejected the request: {response.status_code} {response.text[:200]}"
            )
        try:
            body: dict[str, Any] = response.json()
        except ValueError as exc:
            raise LLMError("LLM answered with invalid JSON") from exc
        return body

    async def complete(self, messages: Sequence[Message], *, max_tokens: int) -> str:
        """Return the assistant's reply to ``messages``, greedily decoded."""
        payload = {
            "model": self.name,
            "messages": list(messages),
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": False,
        }
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self._retries + 1),
                wait=wait_exponential(multiplier=0.2, max=2.0),
                retry=retry_if_exception_type(_Retryable),
                reraise=True,
            ):
                with attempt:
                    body = await self._post(payload)
        except _Retryable as exc:
            raise LLMUnavailableError(str(exc)) from exc
        try:
            content = body["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise LLMError("LLM answer has no choices[0].message.content") from exc
        return str(content or "")
