"""One settings object, read once from ``CITEQA_*`` environment variables."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "bundled_corpus", "bundled_eval"]


def bundled_corpus() -> Path:
    """Path of the bundled Renault-Geely article."""
    return Path(str(resources.files("corpus").joinpath("renault-geely-mou.txt")))


def bundled_eval(name: str) -> Path:
    """Path of a bundled development set about the article (``corpus/eval/NAME``)."""
    return Path(str(resources.files("corpus").joinpath("eval", name)))


class Settings(BaseSettings):
    """Everything the service can be told; ``CITEQA_<NAME>`` sets ``<name>``."""

    model_config = SettingsConfigDict(env_prefix="CITEQA_", frozen=True)

    # Set: these files are kept in the index (added or replaced when they change).
    # Unset: the bundled article seeds an empty index, and the index is otherwise left as is.
    corpus: list[Path] | None = None
    index_dir: Path = Path("var/index")
    model_cache_dir: Path = Path.home() / ".cache" / "citeqa"

    # Logs go to stderr: "json" lines (one event per request) or "console" text;
    # unset: JSON for `citeqa serve`, console text for the other commands.
    log_format: Literal["json", "console"] | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Serve an index that another process writes: follow its CURRENT snapshot every
    # follow_interval_s seconds, never seed or change it, and refuse writes (403).
    read_only: bool = False
    follow_interval_s: float = Field(default=2.0, gt=0)
    # Shards (`citeqa serve --shards DIR...`): a shard that has not answered one call of a
    # question within shard_timeout_s is left out, and the answer is marked degraded.
    shard_timeout_s: float = Field(default=5.0, gt=0)
    # The front keeps the documents it fetched from shards, up to this many sentences.
    shard_cache_sentences: int = Field(default=200_000, ge=0)
    # A write through the front waits this long for each shard to embed and save its part.
    shard_write_timeout_s: float = Field(default=300.0, gt=0)

    host: str = "127.0.0.1"
    port: int = 8000
    # Comma-separated bearer tokens; when set, every /v1 route requires one of them.
    api_keys: SecretStr = SecretStr("")
    # Comma-separated bearer tokens for adding and deleting documents; unset: writes are off.
    admin_keys: SecretStr = SecretStr("")
    # A JSON file of keys with scopes, beside the two above: {"keys": [{"key_sha256": "...",
    # "collections": ["hr"], "write": false}]} (service/http/access.py); read again on
    # SIGHUP and when it changes. Set: every /v1 route requires a key.
    keys_file: Path | None = None
    # Comma-separated origins allowed to call the API from a browser (CORS); unset: none.
    # The playground at / is served by this server and needs none.
    cors_origins: str = ""
    # Requests per minute from one client address to /v1 (429 past it); 0 turns it off.
    rate_limit_per_minute: int = Field(default=300, ge=0)
    # Addresses of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed
    # (comma-separated, "*" for any). Empty: none are, so a client cannot pick the address
    # its rate limit is counted under.
    trusted_proxies: str = ""
    max_body_bytes: int = 16 * 1024 * 1024
    # A request body must arrive within this many seconds (408 past it).
    body_timeout_s: float = Field(default=30.0, gt=0)
    max_document_chars: int = 2_000_000
    max_batch_documents: int = 100
    # A PDF of more pages is refused (413): its text takes ~2 ms a page, its embedding far more.
    max_pdf_pages: int = Field(default=500, ge=1)
    # Documents sent with a question (/v1/ask "documents") are indexed for that question
    # alone: 10.0 s per 1,000 sentences (168,000 characters of SQuAD articles) on 2 cores,
    # so at most this many characters (413), about 1.8 s.
    max_given_chars: int = Field(default=30_000, ge=0)
    # The model id that /v1/models lists and chat completions report.
    model_name: str = "citeqa"
    # The service's address as clients reach it, for links to documents in source cards;
    # unset: the address each request came in on.
    public_url: str | None = None
    # Chat replies end with a "Sources:" text block (a request's sources_block overrides it).
    chat_sources_block: bool = True
    # Earlier chat turns used to make a follow-up stand alone: at most this many turns
    # and characters, newest first.
    chat_history_turns: int = Field(default=6, ge=0)
    chat_history_chars: int = Field(default=4000, ge=0)
    # Chat frontends' background tasks (titles, tags, follow-up suggestions): the plain LLM,
    # capped in tokens, seconds and prompt characters.
    task_max_tokens: int = Field(default=128, ge=1)
    # 90 s: tasks wait behind questions and run one at a time, so three tasks (title, tags,
    # follow-ups) after a question need about 50 s with the embedded model (benchmarks/chores.py).
    task_timeout_s: float = Field(default=90.0, gt=0)
    # 3,000 characters: with the embedded model the tags task took 14 s at 3,000 and 30 s (its
    # whole cap) at 6,000 (benchmarks/chores.py), which left no time for waiting on a question.
    task_prompt_chars: int = Field(default=3000, ge=100)

    # Unset: run the embedded model. Set: any OpenAI-compatible server.
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str = "qwen2.5-coder-1.5b-instruct-q4_k_m"
    llm_timeout_s: float = 120.0
    llm_retries: int = 2
    llm_max_tokens: int = 160
    # One answer's LLM time at most; past it the answer degrades to an extractive one.
    llm_deadline_s: float = Field(default=30.0, gt=0)
    # LLM calls at once, and how many more may wait; one more gets a 503 with Retry-After.
    llm_running: int = Field(default=2, ge=1)
    llm_max_waiting: int = Field(default=8, ge=0)
    llm_threads: int = Field(default_factory=lambda: os.cpu_count() or 2)
    llm_ctx: int = 8192
    # The embedded llama.cpp keeps the prompts it processed in host memory, up to this many
    # MiB, and reuses them when a prompt comes again (the same question, a retry). 0 turns
    # it off: each prompt is paid once per slot, as the latency benchmark needs.
    llm_cache_ram_mib: int = Field(default=2048, ge=0)
    # The embedded llama.cpp's console output: 0 quiet, 3 its load and per-request timings.
    llm_verbosity: int = Field(default=0, ge=-1, le=5)

    # A corpus this small goes whole into the prompt, as a prefix the LLM caches.
    whole_corpus_chars: int = 8000
    # A larger one is cut to its best candidates: at most context_sentences, and past the
    # first context_min_sentences only those whose evidence is at least context_evidence of
    # the best one's (0: no cut). Prompt processing is most of such an answer's time. A cut at
    # 0.7 halves the prompt's sentences and took SQuAD answers from 16.3 s to 12.0 s (p50), but
    # cost F1 0.59 -> 0.49 and gold cited 0.75 -> 0.69 on rows 201-260 (docs/figures.md), so it
    # is the operator's trade to make, not the default.
    context_sentences: int = Field(default=8, ge=1)
    context_min_sentences: int = Field(default=3, ge=1)
    context_evidence: float = Field(default=0.0, ge=0.0, le=1.0)

    # Retrieval: "dense" (FAISS only) or "hybrid" (FAISS and BM25, reciprocal rank fusion).
    retrieval: Literal["dense", "hybrid"] = "hybrid"
    dense_weight: float = 1.0
    lexical_weight: float = 1.0
    rrf_k: int = 60
    # Questions embedded at the same moment share one encode of at most this many texts
    # (index.BatchingEmbedder); 0 embeds each on its own.
    embed_max_batch: int = Field(default=64, ge=0)
    # A question in another language than the documents: "translate" asks the LLM to put
    # it into theirs, searches and answers there, and renders the verified quotes in the
    # asker's language; "off" searches the question as asked and answers in the
    # documents' words (benchmarks/results/cross-language.md compares the designs).
    cross_language: Literal["translate", "off"] = "translate"

    # Evidence thresholds (see service/answering/measures.py for what they measure).
    # Below min_evidence the cited sentences do not bear on the question; with the judge
    # off, a question whose best sentence is below it is not put to the LLM.
    min_evidence: float = 0.3
    min_claim_support: float = 0.5
    # Share of the question's terms the cited sentences must hold.
    min_question_coverage: float = 0.4
    # When the LLM refuses or says nothing verifiable, a sentence holding this share of the
    # question's terms is answered extractively instead of abstaining.
    refusal_override_coverage: float = 0.8
    # Abstain when the LLM's own probability that the sources answer (1 - P(its reply starts
    # "NOT FOUND")) is below this; 0 turns it off.
    min_answerability: float = Field(default=0.0, ge=0.0, le=1.0)
    # After the reply, the LLM is asked yes or no whether the sentences the answer would
    # cite state the answer (prompts/judge.md; one more short LLM call per answer). Its
    # P(yes) is the answer's `support`. Below support_judge_min the answer is withheld; a
    # reply held back by the checks (refused, unsupported, off point, missing what is asked)
    # is given after all, from the sentence it points at, at second_opinion_min or more.
    # Both were chosen on SQuAD (benchmarks/results/squad-judge-gate.md).
    # A document sentence whose embedding lies nearer than this (cosine) to one of the
    # example instructions (prompts/instruction_examples.txt) is screened by the LLM; so is
    # one that addresses someone or opens with a directive verb. 1 leaves only the words.
    instruction_nearness: float = Field(default=0.4, ge=0.0, le=1.0)
    support_judge: bool = True
    support_judge_min: float = Field(default=0.4, ge=0.0, le=1.0)
    second_opinion_min: float = Field(default=0.4, ge=0.0, le=1.0)
    # The support judge follows its yes with the shortest phrase of the cited sentences that
    # answers (prompts/judge.md), shown instead of the quote when it passes its checks
    # (service/answering/phrase.py). It costs the phrase's generated tokens in the judge's
    # call (benchmarks/results/answer-spans.md); needs the support judge.
    shortest_phrase: bool = True
    # Segments this big or bigger (a first build, a merge) keep compressed vectors in memory:
    # IVF-PQ codes, each search re-ranked exactly from the full vectors on disk.
    compress_above: int = Field(default=1_000_000, ge=1)

    @property
    def seed_paths(self) -> list[Path]:
        """The files the index is built from when it is empty."""
        return self.corpus if self.corpus is not None else [bundled_corpus()]

    @property
    def api_key_list(self) -> tuple[str, ...]:
        """The configured API keys, empty when auth is off."""
        return _split(self.api_keys)

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        """The origins CORS allows, empty when it is off."""
        return tuple(o.strip() for o in self.cors_origins.split(",") if o.strip())

    @property
    def admin_key_list(self) -> tuple[str, ...]:
        """The configured admin keys, empty when writes are off."""
        return _split(self.admin_keys)


def _split(keys: SecretStr) -> tuple[str, ...]:
    return tuple(k.strip() for k in keys.get_secret_value().split(",") if k.strip())
