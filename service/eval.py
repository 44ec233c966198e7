"""Evaluation: run a question file through the pipeline and score answers and citations."""

from __future__ import annotations

import json
import re
import statistics
import string
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from index import corpus_checksum, read_documents
from service.answering import VERDICT_WORDS, answer_language, in_no_language, language_of
from service.answering.conversation import standalone_question
from service.answering.pipeline import Answerer
from service.http.wire import ChatMessage, chat_completion
from service.observe import elapsed_ms
from service.schemas import AnswerMode, AskResponse, Verdict
from service.settings import Settings

__all__ = [
    "Conversation",
    "Question",
    "eval_settings",
    "evaluate",
    "evaluate_conversations",
    "exact_match",
    "is_correct",
    "is_gold",
    "read_conversations",
    "read_questions",
    "shown_words",
    "squad_scores",
    "summary_figures",
    "token_f1",
]


def eval_settings(corpus: Sequence[Path], base: Settings | None = None) -> Settings:
    """``base`` (default: the environment's) over an index of ``corpus`` of its own.

    The index sits beside the served one, named by the corpus's checksum: documents added to
    the served index through the API cannot change the figures, and every run over the same
    corpus reuses one index.
    """
    base = base or Settings()
    checksum = corpus_checksum(read_documents(corpus))[:12]
    return base.model_copy(
        update={"corpus": list(corpus), "index_dir": base.index_dir.parent / f"eval-{checksum}"}
    )


@dataclass(frozen=True)
class Question:
    """One evaluation question in either supported format."""

    id: str
    question: str
    answerable: bool
    accept: list[list[str]]  # article format: any alternative whose words all appear
    answers: list[str]  # SQuAD format: gold answer strings
    gold: list[str]  # substrings a cited sentence must contain
    gold_spans: list[tuple[int, int]]
    doc_id: str | None = None
    verdict: str | None = None  # "yes" or "no": what a yes/no question must be answered
    max_words: int | None = None  # the longest shown answer that still reads as short


@dataclass(frozen=True)
class Conversation:
    """A multi-turn conversation whose last turn is scored as ``last``."""

    id: str
    turns: list[str]
    last: Question


def read_conversations(path: Path) -> list[Conversation]:
    """Read ``{"conversations": [{id, turns, accept?, gold?, answerable?}]}``."""
    conversations = []
    for r in json.loads(path.read_text(encoding="utf-8"))["conversations"]:
        turns = [str(t) for t in r["turns"]]
        if not turns:
            raise ValueError(f"{path}: conversation {r.get('id')!r} has no turns")
        last = Question(
            id=str(r["id"]),
            question=turns[-1],
            answerable=r.get("answerable", True),
            accept=r.get("accept", []),
            answers=[],
            gold=r.get("gold", []),
            gold_spans=[],
        )
        conversations.append(Conversation(str(r["id"]), turns, last))
    return conversations


def read_questions(path: Path) -> list[Question]:
    """Read the article JSON format (``{"questions": [...]}``) or SQuAD-style JSONL."""
    raw = path.read_text(encoding="utf-8")
    questions: list[Question] = []
    if path.suffix == ".jsonl":
        for line in raw.splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            questions.append(
                Question(
                    id=str(r["id"]),
                    question=r["question"],
                    answerable=not r.get("is_impossible", False),
                    accept=[],
                    answers=list(r.get("answers", [])),
                    gold=[],
                    gold_spans=[tuple(s) for s in r.get("gold_sentence_doc_spans", [])],
                    doc_id=r.get("doc_id"),
                )
            )
        return questions
    for r in json.loads(raw)["questions"]:
        questions.append(
            Question(
                id=str(r["id"]),
                question=r["q"],
                answerable=r.get("answerable", True),
                accept=r.get("accept", []),
                answers=[],
                gold=r.get("gold", []),
                gold_spans=[],
                verdict=r.get("verdict"),
                max_words=r.get("max_words"),
            )
        )
    return questions


def _normalise(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


_MARKER = re.compile(r"\s*\[\d+\]")
_VERDICT_OPENING = re.compile(r"^(\S+?)[:：]\s*")


def shown_words(answer: str) -> str:
    """What a reader reads as the answer: the text without its ``[n]`` markers."""
    return " ".join(_MARKER.sub("", answer).split())


def quoted_words(answer: str, verdict: Verdict | None) -> str:
    """The shown words of an answer after its verdict ("No: five brands" -> "five brands")."""
    if verdict is None:
        return answer
    words = {language[verdict] for language in VERDICT_WORDS.values()}
    return _VERDICT_OPENING.sub(lambda m: "" if m[1] in words else m[0], answer, count=1)


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD's token F1 between an answer and a gold answer, both normalised."""
    pred, truth = _normalise(prediction).split(), _normalise(gold).split()
    common = sum((Counter(pred) & Counter(truth)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(truth)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold: str) -> bool:
    """SQuAD's exact match: the two are equal once normalised."""
    return _normalise(prediction) == _normalise(gold)


def squad_scores(prediction: str, answers: Sequence[str]) -> tuple[float, bool]:
    """SQuAD's F1 and exact match of ``prediction`` against the best of its gold ``answers``."""
    f1 = max((token_f1(prediction, a) for a in answers), default=0.0)
    return f1, any(exact_match(prediction, a) for a in answers)


def is_correct(q: Question, answer: str, verdict: str | None = None) -> bool:
    """Whether ``answer`` holds one accepted alternative whole (or a gold answer).

    A yes/no question needs its verdict too, and then no accepted words.
    """
    if q.verdict is not None and verdict != q.verdict:
        return False
    lowered = answer.lower()
    if q.verdict is not None and not q.accept:
        return True
    if q.accept:
        return any(all(word.lower() in lowered for word in alt) for alt in q.accept)
    normalised = _normalise(answer)
    return any(_normalise(a) and _normalise(a) in normalised for a in q.answers)


def is_gold(q: Question, doc_id: str, start: int, end: int, text: str) -> bool:
    """Whether a cited span is, or overlaps, one of the question's gold sentences."""
    if any(g in text for g in q.gold):
        return True
    if q.doc_id is not None and doc_id != q.doc_id:
        return False
    return any(
        min(g_end, end) - max(g_start, start) > 0.5 * min(g_end - g_start, end - start)
        for g_start, g_end in q.gold_spans
    )


def _gold_cited(q: Question, response: AskResponse) -> bool:
    return any(is_gold(q, c.doc_id, c.start, c.end, c.text) for c in response.citations)


def _gold_rank(q: Question, answerer: Answerer) -> int | None:
    """1-based rank of the first retrieved sentence that is a gold sentence."""
    for rank, c in enumerate(answerer.retriever.retrieve(q.question).candidates[:10], 1):
        s = answerer.index.sentences[c.index]
        if is_gold(q, s.doc_id, s.start, s.end, s.text):
            return rank
    return None


def _percentile(values: Sequence[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def _row(
    q: Question, answerer: Answerer, response: AskResponse, latency_ms: float
) -> dict[str, Any]:
    docs = answerer.index.documents
    verbatim = [docs[c.doc_id].text[c.start : c.end] == c.text for c in response.citations]
    answer = shown_words(response.answer) if response.answerable else ""
    correct = q.answerable and response.answerable and is_correct(q, answer, response.verdict)
    # A max_words leaves the verdict aside: it is one word of a fixed pair, not the quote.
    words = len(quoted_words(answer, response.verdict).split())
    f1, exact = squad_scores(answer, q.answers)
    return {
        "id": q.id,
        "question": q.question,
        "answerable": q.answerable,
        "abstained": not response.answerable,
        "answer": response.answer,
        "language": language_of(q.question),
        "answer_language": ""
        if in_no_language(response.answer)
        else answer_language(response.answer),
        "correct": correct,
        # Right and short: within the question's max_words, when it gives one.
        "clean": correct and (q.max_words is None or words <= q.max_words),
        "words": words,
        "verdict": response.verdict,
        "f1": f1,
        "exact": exact,
        "gold_cited": q.answerable and _gold_cited(q, response),
        "citations": len(verbatim),
        "verbatim": sum(verbatim),
        "gold_rank": _gold_rank(q, answerer) if q.answerable else None,
        "latency_ms": round(latency_ms, 1),
        "degraded": response.degraded,
        "abstained_because": response.abstained_because,
        "answerability": response.answerability,
        "support": response.support,
        "timings_ms": response.timings_ms,
    }


async def evaluate(
    answerer: Answerer, questions: Sequence[Question], mode: AnswerMode, top_k: int = 5
) -> dict[str, Any]:
    """Answer every question and return the figures and per-question rows."""
    rows: list[dict[str, Any]] = []
    for q in questions:
        started = time.perf_counter()
        response = await answerer.ask(q.question, top_k, mode)
        rows.append(_row(q, answerer, response, elapsed_ms(started)))
    return {"figures": summary_figures(rows, questions, mode, answerer.settings), "rows": rows}


async def evaluate_conversations(
    answerer: Answerer, conversations: Sequence[Conversation], top_k: int = 5
) -> dict[str, Any]:
    """Play each conversation through the chat pipeline and score its last turn.

    Earlier turns are asked in order, each answer going back as the assistant's message
    exactly as chat completions would return it; the last turn is made standalone the
    way chat does it, answered, and scored like a single question.
    """
    settings = answerer.settings
    titles = {d.doc_id: d.title for d in answerer.index.documents.values()}

    async def turn(messages: list[ChatMessage], text: str) -> tuple[str, AskResponse]:
        messages.append(ChatMessage(role="user", content=text))
        question = await standalone_question(answerer.llm, messages, settings)
        return question, await answerer.ask(question, top_k)

    rows: list[dict[str, Any]] = []
    for conversation in conversations:
        messages: list[ChatMessage] = []
        for text in conversation.turns[:-1]:
            question, response = await turn(messages, text)
            reply = chat_completion(
                response, question, settings.model_name, titles,
                sources=settings.chat_sources_block,
            )  # fmt: skip
            messages.append(ChatMessage(role="assistant", content=reply.choices[0].message.content))
        started = time.perf_counter()
        question, response = await turn(messages, conversation.turns[-1])
        latency_ms = elapsed_ms(started)
        scored = replace(conversation.last, question=question)
        transcript = [{"role": m.role, "content": m.text} for m in messages]
        rows.append({**_row(scored, answerer, response, latency_ms), "transcript": transcript})
    last_turns = [c.last for c in conversations]
    return {"figures": summary_figures(rows, last_turns, "llm", settings), "rows": rows}


def summary_figures(
    rows: list[dict[str, Any]], questions: Sequence[Question], mode: AnswerMode, settings: Settings
) -> dict[str, Any]:
    """The run's figures: accuracy, gold cited, abstention, latency, over its rows."""
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    abstained = [r for r in rows if r["abstained"]]
    citations = sum(r["citations"] for r in rows)
    latencies = [r["latency_ms"] for r in rows]

    def share(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    def recall(k: int) -> float | None:
        hits = sum(1 for r in answerable if r["gold_rank"] is not None and r["gold_rank"] <= k)
        return share(hits, len(answerable))

    return {
        "mode": mode,
        "retrieval": settings.retrieval,
        "questions": len(rows),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        # Right answers and right abstentions, over every question.
        "score": share(
            sum(r["correct"] for r in answerable) + sum(r["abstained"] for r in unanswerable),
            len(rows),
        ),
        "recall@1": recall(1),
        "recall@5": recall(5),
        "recall@10": recall(10),
        "answer_accuracy": share(sum(r["correct"] for r in answerable), len(answerable)),
        "answers_clean": share(sum(r["clean"] for r in answerable), len(answerable)),
        "answer_words_p50": statistics.median([r["words"] for r in answerable] or [0]),
        # SQuAD's own metrics of the shown text, over the answerable questions.
        "answer_f1": share(sum(r["f1"] for r in answerable), len(answerable))
        if any(q.answers for q in questions)
        else None,
        "answer_exact": share(sum(r["exact"] for r in answerable), len(answerable))
        if any(q.answers for q in questions)
        else None,
        "gold_cited_rate": share(sum(r["gold_cited"] for r in answerable), len(answerable)),
        "verbatim_citation_rate": share(sum(r["verbatim"] for r in rows), citations),
        "abstention_precision": share(sum(not r["answerable"] for r in abstained), len(abstained)),
        "abstention_recall": share(sum(r["abstained"] for r in unanswerable), len(unanswerable)),
        "false_abstention_rate": share(sum(r["abstained"] for r in answerable), len(answerable)),
        # An answer of names and figures only ("2050 [1]") is in every language.
        "in_question_language": share(
            sum(r["answer_language"] in (r["language"], "") for r in rows), len(rows)
        ),
        "degraded": sum(r["degraded"] for r in rows),
        "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
        "latency_ms_p95": round(_percentile(latencies, 95), 1) if latencies else None,
    }
