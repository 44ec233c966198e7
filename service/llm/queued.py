"""A chat model behind a bounded queue, counted in the metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager

import anyio

from service.errors import BusyError
from service.llm.base import ChatModel, Message, Token
from service.observe import LLM_CALL_SECONDS, LLM_RUNNING, LLM_TOKENS, LLM_WAITING

__all__ = ["QueuedChatModel"]


class QueuedChatModel:
    """A chat model behind a bounded queue.

    At most ``running`` calls run at once and ``max_waiting`` more wait; one call past that
    gets :class:`BusyError` at once instead of a long wait.
    """

    def __init__(self, inner: ChatModel, *, running: int, max_waiting: int) -> None:
        self.inner = inner
        self.name = inner.name
        self._slots = anyio.Semaphore(running)
        self._running = running
        self._max_waiting = max_waiting
        self.waiting = 0

    @property
    def idle(self) -> bool:
        """Whether no call runs or waits."""
        return self._slots.value == self._running and self.waiting == 0

    @property
    def full(self) -> bool:
        """Whether one more call would be refused."""
        return self._slots.value == 0 and self.waiting >= self._max_waiting

    @asynccontextmanager
    async def _slot(self, call: str) -> AsyncIterator[None]:
        """Hold one of the running slots, counted in the metrics, for one call."""
        if self.full:
            raise BusyError()
        self.waiting += 1
        LLM_WAITING.inc()
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
            LLM_WAITING.dec()
        LLM_RUNNING.inc()
        started = time.perf_counter()
        try:
            yield
        finally:
            LLM_CALL_SECONDS.labels(call=call).observe(time.perf_counter() - started)
            LLM_RUNNING.dec()
            self._slots.release()

    async def aclose(self) -> None:
        """Close the model behind the queue, if it holds anything to close."""
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()

    async def complete(self, messages: Sequence[Message], *, max_tokens: int) -> str:
        """:meth:`ChatModel.complete`, queued."""
        async with self._slot("complete"):
            return await self.inner.complete(messages, max_tokens=max_tokens)

    async def stream(
        self, messages: Sequence[Message], *, max_tokens: int
    ) -> AsyncGenerator[Token, None]:
        """:meth:`ChatModel.stream`, queued; the slot is held until the stream is closed."""
        async with (
            self._slot("stream"),
            aclosing(self.inner.stream(messages, max_tokens=max_tokens)) as tokens,
        ):
            async for token in tokens:
                LLM_TOKENS.inc()
                yield token
