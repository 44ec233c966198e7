"""Cited question answering over an index: retrieve, answer, verify, serve.

Packages: ``answering`` (the pipeline), ``llm`` (the model seam and its implementations),
``http`` (the Litestar app). At the top: ``settings``, ``errors``, ``observe`` (metrics
and logs), ``schemas`` (the API's request and response types), ``runtime`` (loading what
the service runs on), ``writes`` (document writes), ``sharding`` (shards on Ray Serve),
``eval`` and ``cli``.

Tests, benchmarks and other programs import what this package and its subpackages
export (``__all__``), never a module.
"""

from service.answering import ABSTAIN_TEXT, Answerer
from service.cli import main
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
from service.eval import (
    Question,
    eval_settings,
    evaluate,
    evaluate_conversations,
    exact_match,
    is_correct,
    is_gold,
    quoted_words,
    read_conversations,
    read_questions,
    shown_words,
    squad_scores,
    summary_figures,
    token_f1,
)
from service.http import KeysFileError, Loader, create_app
from service.llm import ChatModel, EmbeddedServer, OpenAIChatModel, assemble_model
from service.observe import configure_logging
from service.runtime import Runtime, load_runtime, open_index
from service.schemas import (
    AnswerMode,
    AskRequest,
    AskResponse,
    Citation,
    Filter,
    GivenDocument,
    Passage,
    SearchRequest,
)
from service.settings import Settings, bundled_corpus, bundled_eval
from service.sharding import ServeShard, ShardReplica, reshard, start_shards
from service.writes import delete_document, upsert_documents

__all__ = [
    "ABSTAIN_TEXT",
    "AnswerMode",
    "Answerer",
    "AskRequest",
    "AskResponse",
    "ChatModel",
    "Citation",
    "CiteQAError",
    "EmbeddedServer",
    "Filter",
    "GivenDocument",
    "IndexLoadError",
    "InvalidRequestError",
    "KeysFileError",
    "LLMError",
    "LLMUnavailableError",
    "Loader",
    "ModelUnavailableError",
    "NotFoundError",
    "NotReadyError",
    "OpenAIChatModel",
    "Passage",
    "Question",
    "Runtime",
    "SearchRequest",
    "ServeShard",
    "Settings",
    "ShardReplica",
    "assemble_model",
    "bundled_corpus",
    "bundled_eval",
    "configure_logging",
    "create_app",
    "delete_document",
    "eval_settings",
    "evaluate",
    "evaluate_conversations",
    "exact_match",
    "is_correct",
    "is_gold",
    "load_runtime",
    "main",
    "open_index",
    "quoted_words",
    "read_conversations",
    "read_questions",
    "reshard",
    "shown_words",
    "squad_scores",
    "start_shards",
    "summary_figures",
    "token_f1",
    "upsert_documents",
]
