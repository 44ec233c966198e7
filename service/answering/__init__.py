"""The answering pipeline: a question in, a verified, cited answer (or an abstention) out.

Steps, one module each: ``retrieve`` (candidates and evidence), ``reply`` (the LLM's reply
cut into claims), ``quote`` (a claim aligned back to its sentence), ``ground`` (support,
whether the cited sentences answer, every reason to abstain), ``judge`` (the LLM's yes/no
verdicts), ``compose`` (text, markers, citations); ``pipeline`` runs them over one
question's state; ``phrase`` (the judge's shortest phrase, aligned to its sentence) and
``verdict`` (a yes/no question's yes or no) are steps it runs when they apply. Beside
them: ``measures`` (text measures the steps share),
``instructions`` (which sentences and questions give orders), ``prompts`` (the templates),
``conversation`` (a chat's question, and frontends' background tasks), ``language`` (which
language a text is in), ``translate`` (questions into the documents' language, answers
into the asker's), ``reading`` (an index with what questions over it need) and ``shards``
(one corpus over several indexes, searched as one).

Imports ``index``, ``service.llm`` and the top-level ``settings``, ``errors``, ``observe``
and ``schemas``; never the HTTP layer or its wire types.
"""

from service.answering.compose import ABSTAIN_TEXT, Composition, VerifiedClaim
from service.answering.conversation import (
    Turn,
    history,
    is_frontend_task,
    looks_dependent,
    resolve_positions,
    run_task,
    standalone_question,
)
from service.answering.ground import (
    Abstention,
    Grounder,
    answerability,
    cuts_a_list,
    holds_what_is_asked,
    p_yes,
)
from service.answering.instructions import (
    Examples,
    document_instructions,
    suspect,
    suspect_question,
)
from service.answering.judge import Judgement, supports
from service.answering.language import (
    ABSTAIN_TEXTS,
    LANGUAGE_NAMES,
    abstain_text,
    answer_language,
    in_no_language,
    language_of,
)
from service.answering.measures import (
    Figure,
    asks_several,
    coverage,
    entities_supported,
    figures_in,
    number_value,
    numbers_in,
    numbers_supported,
    terms,
)
from service.answering.phrase import phrase_of
from service.answering.pipeline import (
    AnswerDelta,
    AnswerDone,
    Answerer,
    AskEvent,
    Asking,
    CitationFound,
    StreamFailed,
)
from service.answering.prompts import render_answer_prompt, render_judge_prompt
from service.answering.quote import Quote, align
from service.answering.reading import Reading, Scope
from service.answering.reply import Claim, ReplyParser, claims_of
from service.answering.retrieve import Candidate, Retrieval, Retriever
from service.answering.shards import (
    FetchedDocument,
    ShardClient,
    ShardFinds,
    ShardReader,
    Shards,
    ShardSummary,
    ShardWriteError,
    ShardWritten,
    shard_of,
)
from service.answering.verdict import (
    VERDICT_WORDS,
    Judged,
    Otherwise,
    asks_yes_or_no,
    credits_unstated,
    read_verdict,
    settling_clauses,
    stated_otherwise,
    states_other_figures,
    through_the_asked,
    with_verdict,
    without_verdict,
)

__all__ = [
    "ABSTAIN_TEXT",
    "ABSTAIN_TEXTS",
    "LANGUAGE_NAMES",
    "VERDICT_WORDS",
    "Abstention",
    "AnswerDelta",
    "AnswerDone",
    "Answerer",
    "AskEvent",
    "Asking",
    "Candidate",
    "CitationFound",
    "Claim",
    "Composition",
    "Examples",
    "FetchedDocument",
    "Figure",
    "Grounder",
    "Judged",
    "Judgement",
    "Otherwise",
    "Quote",
    "Reading",
    "ReplyParser",
    "Retrieval",
    "Retriever",
    "Scope",
    "ShardClient",
    "ShardFinds",
    "ShardReader",
    "ShardSummary",
    "ShardWriteError",
    "ShardWritten",
    "Shards",
    "StreamFailed",
    "Turn",
    "VerifiedClaim",
    "abstain_text",
    "align",
    "answer_language",
    "answerability",
    "asks_several",
    "asks_yes_or_no",
    "claims_of",
    "coverage",
    "credits_unstated",
    "cuts_a_list",
    "document_instructions",
    "entities_supported",
    "figures_in",
    "history",
    "holds_what_is_asked",
    "in_no_language",
    "is_frontend_task",
    "language_of",
    "looks_dependent",
    "number_value",
    "numbers_in",
    "numbers_supported",
    "p_yes",
    "phrase_of",
    "read_verdict",
    "render_answer_prompt",
    "render_judge_prompt",
    "resolve_positions",
    "run_task",
    "settling_clauses",
    "shard_of",
    "standalone_question",
    "stated_otherwise",
    "states_other_figures",
    "supports",
    "suspect",
    "suspect_question",
    "terms",
    "through_the_asked",
    "with_verdict",
    "without_verdict",
]
