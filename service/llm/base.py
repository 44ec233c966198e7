"""The LLM seam: what the answering pipeline needs of any chat model."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio

from service.errors import LLMError

__all__ = ["ChatModel", "Message", "Token", "until"]

Message = dict[str, str]


@dataclass(frozen=True)
class Token:
    """A piece of streamed reply; ``top`` holds the first token's likeliest alternatives.

    ``top`` is ``(token, logprob)`` pairs, empty when the server sends no logprobs.
    """

    text: str
    top: tuple[tuple[str, float], ...] = ()


class ChatModel(Protocol):
    """Anything that completes a chat; ``name`` is reported to clients."""

    name: str

    async def complete(self, messages: Sequence[Message], *, max_tokens: int) -> str:
        """The whole reply to ``messages``, at most ``max_tokens`` long."""
        ...

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int
    ) -> AsyncGenerator[Token, None]:
        """The reply to ``messages`` token by token; the first carries its alternatives."""
        ...


async def until(
    tokens: AsyncGenerator[Token, None], deadline: float
) -> AsyncGenerator[Token, None]:
    """The tokens that arrive before ``deadline`` (monotonic); past it, an LLMError."""
    while True:
        try:
            with anyio.fail_after(max(deadline - time.monotonic(), 0.0)):
                token = await anext(tokens)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise LLMError("the LLM passed its deadline") from None
        yield token
