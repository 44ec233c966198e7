"""The conversation eval plays turns through the chat pipeline and scores the last one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from index import load_or_build, read_documents
from service import (
    Answerer,
    Question,
    Settings,
    evaluate_conversations,
    exact_match,
    is_correct,
    is_gold,
    quoted_words,
    read_conversations,
    read_questions,
    shown_words,
    summary_figures,
    token_f1,
)
from tests.conftest import ROOT, HashingEmbedder, QueuedUpstream, label_of

pytestmark = pytest.mark.anyio


async def test_conversations_are_played_and_their_last_turn_scored(
    tmp_path: Path, settings: Settings, hashing_embedder: HashingEmbedder, upstream: QueuedUpstream
) -> None:
    path = tmp_path / "conversations.json"
    path.write_text(
        json.dumps(
            {
                "conversations": [
                    {"id": "a", "turns": ["Which carmaker signed a memorandum with Geely?",
                                          "How many employees does it have?"],
                     "accept": [["18 10000"]], "gold": ["employees"]},
                    {"id": "b", "turns": ["Who signed the memorandum with Renault group?",
                                          "What is its share price?"], "answerable": False},
                ]
            }
        )
    )  # fmt: skip
    index = load_or_build(settings.index_dir, read_documents(settings.seed_paths), hashing_embedder)
    answerer = Answerer.over(index, hashing_embedder, upstream.model(), settings)
    await answerer.warm()
    signed = label_of(upstream, "memorandum of understanding")
    employees = label_of(upstream, "employees")
    upstream.queue(
        f"Renault group signed the memorandum of understanding {signed}.",
        "How many employees does Renault group have?",
        f"Renault group has 18 10000 employees {employees}.",
        f"Geely Holding Group signed the memorandum of understanding {signed}.",
        "What is Geely Holding Group's share price?",
        "NOT FOUND",
    )
    result = await evaluate_conversations(answerer, read_conversations(path))
    first, second = result["rows"]
    assert first["question"] == "How many employees does Renault group have?"
    assert first["correct"] and first["gold_cited"]
    assert first["transcript"][1]["role"] == "assistant"
    assert "Sources:" in first["transcript"][1]["content"]  # as chat returned it
    assert second["abstained"] and not second["answerable"]
    assert result["figures"]["score"] == 1.0


def _question(**fields: object) -> Question:
    base: dict[str, object] = {
        "id": "q", "question": "How many?", "answerable": True, "accept": [], "answers": [],
        "gold": [], "gold_spans": [], "doc_id": None,
    }  # fmt: skip
    return Question(**{**base, **fields})  # type: ignore[arg-type]


def test_both_question_formats_are_read(tmp_path: Path) -> None:
    article = tmp_path / "a.json"
    article.write_text(json.dumps({"questions": [
        {"id": "v1", "q": "Which platform?", "accept": [["CMA"]], "gold": ["CMA"]},
        {"id": "n1", "q": "Revenue?", "answerable": False},
    ]}))  # fmt: skip
    squad = tmp_path / "s.jsonl"
    squad.write_text(
        json.dumps({"id": 7, "doc_id": "d", "question": "Who?", "answers": ["Ann"],
                    "is_impossible": False, "gold_sentence_doc_spans": [[0, 10]]})
        + "\n\n"
        + json.dumps({"id": 8, "doc_id": "d", "question": "Why?", "is_impossible": True})
        + "\n"
    )  # fmt: skip
    v1, n1 = read_questions(article)
    assert (v1.answerable, v1.accept, n1.answerable) == (True, [["CMA"]], False)
    s7, s8 = read_questions(squad)
    assert (s7.id, s7.answers, s7.gold_spans, s7.doc_id) == ("7", ["Ann"], [(0, 10)], "d")
    assert s8.answerable is False


def test_an_answer_is_correct_when_one_alternative_is_whole_in_it() -> None:
    q = _question(accept=[["Nissan", "Mitsubishi"], ["alliance"]])
    assert is_correct(q, "Renault is allied with nissan and MITSUBISHI [1].")
    assert is_correct(q, "An alliance [1].")
    assert not is_correct(q, "Nissan only [1].")
    squad = _question(answers=["the Eiffel Tower"])
    assert is_correct(squad, "It is the Eiffel tower.") and not is_correct(squad, "A tower.")
    assert token_f1("the Eiffel Tower in Paris", "Eiffel Tower") == pytest.approx(2 / 3)


def test_a_citation_is_gold_by_substring_or_by_overlapping_the_gold_span() -> None:
    q = _question(gold=["CMA"])
    assert is_gold(q, "x", 0, 5, "the CMA platform") and not is_gold(q, "x", 0, 5, "other")
    spans = _question(gold_spans=[(100, 200)], doc_id="d")
    assert is_gold(spans, "d", 120, 190, "")  # inside the gold sentence
    assert not is_gold(spans, "d", 190, 300, "")  # overlaps too little
    assert not is_gold(spans, "other", 100, 200, "")  # another document


def test_figures_count_right_answers_and_right_abstentions() -> None:
    rows = [
        {"answerable": True, "abstained": False, "correct": True, "gold_cited": True,
         "f1": 1.0, "citations": 1, "verbatim": 1, "gold_rank": 1, "latency_ms": 10.0,
         "degraded": False, "language": "fr", "answer_language": "fr", "clean": True,
         "words": 3, "exact": True},
        {"answerable": True, "abstained": True, "correct": False, "gold_cited": False,
         "f1": 0.0, "citations": 0, "verbatim": 0, "gold_rank": 7, "latency_ms": 30.0,
         "degraded": False, "language": "fr", "answer_language": "en", "clean": False,
         "words": 0, "exact": False},
        {"answerable": False, "abstained": True, "correct": False, "gold_cited": False,
         "f1": 0.0, "citations": 0, "verbatim": 0, "gold_rank": None, "latency_ms": 20.0,
         "degraded": True, "language": "en", "answer_language": "en", "clean": False,
         "words": 0, "exact": False},
    ]  # fmt: skip
    figures = summary_figures(rows, [_question()], "llm", Settings())
    assert figures["score"] == pytest.approx(2 / 3, abs=1e-4)
    assert figures["answer_accuracy"] == 0.5 and figures["false_abstention_rate"] == 0.5
    assert figures["abstention_recall"] == 1.0 and figures["abstention_precision"] == 0.5
    assert (figures["recall@1"], figures["recall@5"], figures["recall@10"]) == (0.5, 0.5, 1.0)
    assert figures["latency_ms_p50"] == 20.0 and figures["degraded"] == 1
    assert figures["in_question_language"] == pytest.approx(2 / 3, abs=1e-4)
    assert figures["answers_clean"] == 0.5 and figures["answer_words_p50"] == 1.5


def test_an_answer_in_no_language_counts_as_in_the_askers() -> None:
    row = {"answerable": True, "abstained": False, "correct": True, "gold_cited": True,
           "f1": 1.0, "citations": 1, "verbatim": 1, "gold_rank": 1, "latency_ms": 10.0,
           "degraded": False, "clean": True, "words": 1, "exact": True}  # fmt: skip
    rows = [
        row | {"language": "zh", "answer_language": ""},  # "2050 [1]"
        row | {"language": "zh", "answer_language": "en"},  # left in English
    ]
    figures = summary_figures(rows, [_question()], "llm", Settings())
    assert figures["in_question_language"] == 0.5


def test_the_shown_text_is_scored_without_its_markers_as_squad_scores_it() -> None:
    shown = shown_words("the Eiffel Tower [1].")
    assert shown == "the Eiffel Tower."
    assert exact_match(shown, "Eiffel Tower") and token_f1(shown, "Eiffel Tower") == 1.0
    # With the marker, "1" was a word of the answer, and no short answer could score 1.
    assert token_f1("the Eiffel Tower [1].", "Eiffel Tower") < 1.0


def test_a_yes_no_answers_length_leaves_its_verdict_aside() -> None:
    assert quoted_words("No: five brands.", "no") == "five brands."
    assert quoted_words("否：五个品牌。", "no") == "五个品牌。"
    assert quoted_words("Renault: five brands.", None) == "Renault: five brands."
    assert quoted_words("Renault: five brands.", "yes") == "Renault: five brands."


def test_a_yes_no_question_is_right_only_with_its_verdict() -> None:
    q = Question("y", "Does Renault group have ten brands?", True, [], [], [], [], verdict="no")
    assert is_correct(q, "No: Renault group has five brands [1].", "no")
    assert not is_correct(q, "Yes: Renault group has five brands [1].", "yes")
    assert not is_correct(q, "Renault group has five brands [1].", None)


def test_record_mode_rows_replay_the_support_judge_at_any_thresholds() -> None:
    """benchmarks/judge_gate.py, which chose the judge's thresholds, replays eval rows."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "judge_gate", ROOT / "benchmarks" / "judge_gate.py"
    )
    assert spec is not None and spec.loader is not None
    judge_gate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(judge_gate)

    def row(
        answerable: bool, support: float | None, path: str | None, **extra: bool
    ) -> dict[str, Any]:
        timings = {path: 1.0} if path else {}
        base = {"answerable": answerable, "abstained": False, "correct": answerable}
        return {
            **base,
            "gold_cited": answerable,
            "support": support,
            "timings_ms": timings,
            **extra,
        }

    rows = [
        row(True, 0.8, "judge"),  # passed the checks, judged likely
        row(False, 0.2, "judge"),  # passed the checks, judged unlikely
        row(True, 0.5, "second_opinion", gold_cited=False),  # held back, given at 0.5
        row(False, None, None, abstained=True),  # weak evidence: never asked
    ]
    chosen = judge_gate.figures(rows, 0.35, 0.4)
    assert chosen == {"accuracy": 1.0, "gold": 0.5, "abstained": 1.0, "false_abstention": 0.0}
    stricter_opinion = judge_gate.figures(rows, 0.35, 0.6)
    assert stricter_opinion["accuracy"] == 0.5 and stricter_opinion["false_abstention"] == 0.5
    no_gate = judge_gate.figures(rows, 0.0, 0.4)
    assert no_gate["abstained"] == 0.5  # the unlikely answer is given
    answerable = [r for r in rows if r["answerable"]]
    assert judge_gate.auc(rows, "judge") == 1.0 and judge_gate.auc(answerable, "judge") is None
