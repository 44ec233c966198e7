"""Cited question answering over an index: retrieve, answer, verify, serve."""

from service._answer import Answerer, Candidate
from service._app import Loader, create_app
from service._compose import ABSTAIN_TEXT
from service._embedded import EmbeddedServer, assemble_model
from service._errors import (
    CiteQAError,
    IndexLoadError,
    InvalidRequestError,
    LLMError,
    LLMUnavailableError,
    ModelUnavailableError,
    NotFoundError,
    NotReadyError,
)
from service._llm import ChatModel, OpenAIChatModel
from service._runtime import Runtime, load_runtime
from service._schemas import AskRequest, AskResponse, Citation, Passage, SearchRequest
from service._settings import Settings, bundled_corpus

__all__ = [
    "ABSTAIN_TEXT",
    "Answerer",
    "AskRequest",
    "AskResponse",
    "Candidate",
    "ChatModel",
    "Citation",
    "CiteQAError",
    "EmbeddedServer",
    "IndexLoadError",
    "InvalidRequestError",
    "LLMError",
    "LLMUnavailableError",
    "Loader",
    "ModelUnavailableError",
    "NotFoundError",
    "NotReadyError",
    "OpenAIChatModel",
    "Passage",
    "Runtime",
    "SearchRequest",
    "Settings",
    "assemble_model",
    "bundled_corpus",
    "create_app",
    "load_runtime",
]
