"""Cited question answering over an index: retrieve, answer, verify, serve."""

from service.answering.pipeline import Answerer, Candidate
from service.http.app import Loader, create_app
from service.answering.compose import ABSTAIN_TEXT
from service.llm.embedded import EmbeddedServer, assemble_model
from service.errors import (
    CiteQAError,
    IndexLoadError,
    InvalidRequestError,
    LLMError,
    LLMUnavailableError,
    ModelUnavailableError,
    NotFoundError,
    NotReadyError,
)
from service.llm.client import ChatModel, OpenAIChatModel
from service.runtime import Runtime, load_runtime
from service.schemas import AskRequest, AskResponse, Citation, Passage, SearchRequest
from service.settings import Settings, bundled_corpus

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
