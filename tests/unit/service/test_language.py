"""Which language a question and an answer are in: what decides translation and rendering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.answering import answer_language, in_no_language, language_of

EVAL = Path(__file__).resolve().parents[3] / "corpus" / "eval"


def _questions(name: str) -> list[str]:
    rows = json.loads((EVAL / f"article_questions_{name}.json").read_text())["questions"]
    return [row["q"] for row in rows]


@pytest.mark.parametrize(
    ("name", "language"),
    [("en24", "en"), ("more", "en"), ("fr", "fr"), ("zh", "zh"), ("de", "de"), ("es", "es"),
     ("ja", "ja")],
)  # fmt: skip
def test_every_question_of_an_eval_set_reads_as_its_language(name: str, language: str) -> None:
    assert {q: language_of(q) for q in _questions(name)} == {q: language for q in _questions(name)}


def test_a_short_question_full_of_names_still_reads_as_its_language() -> None:
    assert language_of("Combien de marques compte Geely Holding Group ?") == "fr"
    assert language_of("Wie viele Marken hat die Geely Holding Group?") == "de"
    assert language_of("Who owns Renault Samsung?") == "en"


@pytest.mark.parametrize(
    ("answer", "language"),
    [
        ("中国和韩国 [1]（“China and South Korea”）。", "zh"),
        ("Chine et Corée du Sud [1] (“China and South Korea”).", "fr"),
        ("China and South Korea [1].", "en"),  # a bare quote is in the quote's language
        ("Les documents ne répondent pas à cette question.", "fr"),
    ],
)
def test_an_answer_is_in_the_language_it_says_things_in_not_that_of_its_quotes(
    answer: str, language: str
) -> None:
    assert answer_language(answer) == language


@pytest.mark.parametrize(
    ("answer", "none"),
    [
        ("2050 [1] (“2050”).", True),
        ("Renault [1] (“Renault”).", True),
        ("Geely Holding Group [1]（“Geely Holding Group”）。", True),
        ("No: Dacia [1].", False),  # the verdict is an English word
        ("20 ans [1] (“20 Years”).", False),
        ("memorandum of understanding (MoU) [1].", False),
        ("300万 [1]（“300 Ten thousand units”）。", False),
    ],
)
def test_an_answer_of_names_and_figures_only_is_in_no_language(answer: str, none: bool) -> None:
    assert in_no_language(answer) is none
