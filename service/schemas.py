"""Wire types: what the HTTP API accepts and returns."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

__all__ = [
    "COLLECTION_NAME",
    "MAX_QUESTION_CHARS",
    "AnswerMode",
    "AskRequest",
    "AskResponse",
    "Citation",
    "Collection",
    "Collections",
    "DocumentDetail",
    "DocumentList",
    "DocumentSummary",
    "ErrorBody",
    "FigureReading",
    "GivenDocument",
    "Passage",
    "SearchRequest",
    "SearchResponse",
    "SentenceHit",
    "SentenceSpan",
]

AnswerMode = Literal["llm", "extractive"]
Verdict = Literal["yes", "no"]
MAX_QUESTION_CHARS = 2000  # a question on /v1/ask, or the last message of a chat
# Some text to ask about: not only whitespace, and no NUL (no client means one).
Question = Annotated[
    str, Meta(min_length=1, max_length=MAX_QUESTION_CHARS, pattern=r"^[^\x00]*[^\s\x00][^\x00]*$")
]
TopK = Annotated[int, Meta(ge=1, le=20)]
# What a collection may be named (index.DEFAULT_COLLECTION is one).
COLLECTION_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
Collection = Annotated[str, Meta(pattern=COLLECTION_NAME)]
# The collections a question is asked in (default: every one the key reads).
Collections = Annotated[list[Collection], Meta(min_length=1, max_length=100)]


class Filter(msgspec.Struct, forbid_unknown_fields=True):
    """Which documents a question is asked of: all of them, by default.

    ``doc_ids``: only these. ``metadata``: only documents whose metadata has, for every key,
    the value given or one of the values listed (values match exactly, as strings).
    """

    doc_ids: Annotated[list[Annotated[str, Meta(min_length=1)]], Meta(max_length=1000)] | None = (
        None
    )
    metadata: dict[str, str | Annotated[list[str], Meta(min_length=1)]] = msgspec.field(
        default_factory=dict
    )

    def values(self) -> dict[str, list[str]]:
        """Each metadata key's accepted values."""
        return {k: [v] if isinstance(v, str) else v for k, v in self.metadata.items()}


class GivenDocument(msgspec.Struct, forbid_unknown_fields=True):
    """A document sent with the question, answered over and never stored."""

    text: Annotated[str, Meta(min_length=1)]
    title: Annotated[str, Meta(max_length=500)] | None = None


class AskRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/ask``."""

    question: Question
    top_k: TopK = 5
    answer_mode: AnswerMode = "llm"
    stream: bool = False
    collections: Collections | None = None
    filter: Filter | None = None
    # Answer over these alone (their doc_ids are "given-1", "given-2", ...), not the index.
    documents: Annotated[list[GivenDocument], Meta(min_length=1, max_length=20)] | None = None


class SearchRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/search``."""

    query: Question
    top_k: TopK = 5
    collections: Collections | None = None
    filter: Filter | None = None


class Citation(msgspec.Struct):
    """A verified source sentence; ``text == document.text[start:end]``."""

    doc_id: str
    collection: str  # the doc_id is unique within it
    sentence_id: str
    start: int
    end: int
    text: str
    score: float
    page: int | None = None  # 1-based, in a paged document (PDF); None without pages


class Passage(msgspec.Struct):
    """A chunk of consecutive sentences around a retrieved sentence."""

    doc_id: str
    collection: str
    chunk_id: str
    start: int
    end: int
    text: str
    score: float


class SentenceHit(msgspec.Struct):
    """A retrieved sentence."""

    doc_id: str
    collection: str
    sentence_id: str
    start: int
    end: int
    text: str
    score: float


class FigureReading(msgspec.Struct):
    """A figure of the answer as its source writes it, and the value a rule reads in it.

    "18 10000" is read as 180,000, "300 Ten thousand" as 3,000,000. The reading is shown
    beside the quote, never instead of it.
    """

    text: str  # the figure as the quote writes it: "18 10000"
    value: float  # 180000.0
    reading: str  # the value as written for a reader: "180,000"
    citation: int  # the [n] of the quote that holds it


class AskResponse(msgspec.Struct):
    """An answer whose ``[n]`` markers point at ``citations[n-1]``."""

    answer: str  # on abstention, the fixed sentence that says so
    answerable: bool
    citations: list[Citation]
    passages: list[Passage]
    mode: AnswerMode
    degraded: bool
    timings_ms: dict[str, float]
    # Why the answer was withheld (see service/answering/ground.py), or None when answered.
    abstained_because: str | None = None
    # The LLM's own probability that the sources answer, from its first token's logprobs;
    # None without an LLM reply or when the LLM server sends no logprobs.
    answerability: float | None = None
    # The LLM's probability, asked yes or no, that the cited sentences state the answer (on
    # abstention: the sentences it was asked about); None when it was not asked or the
    # LLM server sends no logprobs.
    support: float | None = None
    # A yes/no question's answer, judged by the LLM on the cited sentences. The answer text
    # then opens with "Yes:" or "No:", the only words it holds that are not the sources'.
    verdict: Verdict | None = None
    # Figures of the answer that the source writes in a machine-translated form.
    figures: list[FigureReading] = msgspec.field(default_factory=list)


class SearchResponse(msgspec.Struct):
    """Ranked sentences and chunks for a query."""

    sentences: list[SentenceHit]
    passages: list[Passage]
    timings_ms: dict[str, float]


class SentenceSpan(msgspec.Struct):
    """A sentence of a document with its offsets."""

    sentence_id: str
    start: int
    end: int
    text: str


class DocumentSummary(msgspec.Struct):
    """A document in the list."""

    doc_id: str
    collection: str
    title: str
    chars: int
    sentences: int


class DocumentList(msgspec.Struct):
    """``GET /v1/documents``."""

    documents: list[DocumentSummary]


class DocumentDetail(msgspec.Struct):
    """``GET /v1/documents/{doc_id}``: the text and its sentences."""

    doc_id: str
    collection: str
    title: str
    text: str
    sentences: list[SentenceSpan]
    # A paged document (PDF): the offset in ``text`` where each page starts, and the URL of
    # a page's image (``{page}`` 1-based; ``?start=&end=`` lights up those characters).
    pages: list[int] | None = None
    page_image: str | None = None


class ErrorBody(msgspec.Struct):
    """Every error response."""

    status_code: int
    detail: str
    extra: list[dict[str, str]] | None = None
