"""A chat model that replies from a script: the fake that pipeline tests and demos fill.

In the manner of ``llm``'s ``MockModel``: replies are queued, each prompt is recorded, and
a reply may carry the first token's alternatives (for the yes/no judges) or be an
exception to raise.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field

from service.llm.base import Message, Token

__all__ = ["ScriptedChatModel", "ScriptedReply"]


@dataclass(frozen=True)
class ScriptedReply:
    """One reply: its text, streamed a word at a time, and the first token's alternatives."""

    text: str
    top: tuple[tuple[str, float], ...] = ()


Script = str | ScriptedReply | Exception


@dataclass
class ScriptedChatModel:
    """Replies in the order queued; ``default`` answers when the queue is empty.

    ``respond``, when set, sees each prompt first and may answer it instead of the queue
    (to give every judge a verdict without queueing one per call).
    """

    replies: list[Script] = field(default_factory=list)
    default: Script = "NOT FOUND"
    respond: Callable[[Sequence[Message]], Script | None] | None = None
    name: str = "scripted"
    prompts: list[list[Message]] = field(default_factory=list)

    def queue(self, *replies: Script) -> None:
        """Add replies to the end of the script."""
        self.replies.extend(replies)

    def _next(self, messages: Sequence[Message]) -> ScriptedReply:
        self.prompts.append(list(messages))
        reply = self.respond(messages) if self.respond is not None else None
        if reply is None:
            reply = self.replies.pop(0) if self.replies else self.default
        if isinstance(reply, Exception):
            raise reply
        return reply if isinstance(reply, ScriptedReply) else ScriptedReply(reply)

    async def complete(self, messages: Sequence[Message], *, max_tokens: int) -> str:
        """The next scripted reply, whole."""
        return self._next(messages).text

    async def stream(
        self, messages: Sequence[Message], *, max_tokens: int
    ) -> AsyncGenerator[Token, None]:
        """The next scripted reply a word at a time; the first word carries ``top``."""
        reply = self._next(messages)
        for n, word in enumerate(re.findall(r"\S*\s*", reply.text)):
            if word:
                yield Token(word, reply.top if n == 0 else ())
