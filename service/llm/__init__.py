"""The LLM: the seam the pipeline talks to, and what fills it.

``base`` (the ``ChatModel`` protocol), ``openai`` (any OpenAI-compatible server, over
httpx), ``queued`` (a bounded queue in front of a model), ``embedded`` (the packaged GGUF
served by llama.cpp on loopback) and ``scripted`` (a fake for tests).

Imports only ``service.errors`` and ``service.observe``: never the answering pipeline,
the HTTP layer or ``index``.
"""

from service.llm.base import ChatModel, Message, Token, until
from service.llm.embedded import EmbeddedServer, PackagedModel, assemble_model
from service.llm.openai import OpenAIChatModel
from service.llm.queued import QueuedChatModel
from service.llm.scripted import ScriptedChatModel, ScriptedReply

__all__ = [
    "ChatModel",
    "EmbeddedServer",
    "Message",
    "OpenAIChatModel",
    "PackagedModel",
    "QueuedChatModel",
    "ScriptedChatModel",
    "ScriptedReply",
    "Token",
    "assemble_model",
    "until",
]
