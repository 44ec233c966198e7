"""A chat model behind a bounded queue, counted in the metrics, with a lane for chores.

Questions queue for the model's slots. Chores (a chat frontend's titles, tags and follow-up
suggestions) take a lane of their own behind them: a chore starts only when no question runs
or waits, one at a time, and a question that arrives cancels the chore running, so a chore
never slows a question down.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager

import anyio

from service.errors import BusyError, LLMError
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
        self._chore = anyio.Lock()  # one chore at a time
        self._chores_running: set[anyio.CancelScope] = set()

    @property
    def idle(self) -> bool:
        """Whether no call runs or waits."""
        return self._slots.value == self._running and self.waiting == 0

    async def until_idle(self, poll_s: float) -> None:
        """Return once no call runs or waits, looking every ``poll_s`` seconds."""
        while not self.idle:
            await anyio.sleep(poll_s)

    @property
    def full(self) -> bool:
        """Whether one more call would be refused."""
        return self._slots.value == 0 and self.waiting >= self._max_waiting

    def chores(self) -> ChatModel:
        """The same model, for chores: behind every question, and cancelled by one."""
        return _Chores(self)

    @asynccontextmanager
    async def _slot(self, call: str) -> AsyncIterator[None]:
        """Hold one of the running slots, counted in the metrics, for one call."""
        if self.full:
            raise BusyError()
        for scope in list(self._chores_running):  # a question comes first
            scope.cancel()
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


_CHORE_GRACE_S = 0.5


class _GaveWay(LLMError):
    """A chore's call, cancelled because a question came in."""


class _Chores:
    """A queued model's lane for chores (``QueuedChatModel.chores``)."""

    def __init__(self, queue: QueuedChatModel) -> None:
        self.queue = queue
        self.name = queue.name

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[anyio.CancelScope]:
        queue = self.queue
        async with queue._chore:
            # A question sent with the chore (a frontend's next message and its tasks) is
            # still being retrieved for when the chore arrives: it goes first.
            await anyio.sleep(_CHORE_GRACE_S)
            await queue.until_idle(0.05)
            started = time.perf_counter()
            with anyio.CancelScope() as scope:
                queue._chores_running.add(scope)
                LLM_RUNNING.inc()
                try:
                    yield scope
                finally:
                    queue._chores_running.discard(scope)
                    LLM_RUNNING.dec()
                    LLM_CALL_SECONDS.labels(call="chore").observe(time.perf_counter() - started)
            if scope.cancelled_caught:
                raise _GaveWay("a question came in: the chore gave way")

    async def complete(self, messages: Sequence[Message], *, max_tokens: int) -> str:
        """The inner model's reply, once no question runs or waits.

        A question that comes in cancels the call; it starts again once the LLM is idle,
        so the chore still gets its reply (within whatever deadline its caller set).
        """
        while True:
            reply = ""
            try:
                async with self._turn():
                    reply = await self.queue.inner.complete(messages, max_tokens=max_tokens)
            except _GaveWay:
                continue
            return reply

    async def stream(
        self, messages: Sequence[Message], *, max_tokens: int
    ) -> AsyncGenerator[Token, None]:
        """The inner model's tokens, once no question runs or waits."""
        async with (
            self._turn(),
            aclosing(self.queue.inner.stream(messages, max_tokens=max_tokens)) as tokens,
        ):
            async for token in tokens:
                yield token
