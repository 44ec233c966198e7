"""Yes/no questions and figures: the only words an answer shows that are not a quote."""

from __future__ import annotations

import math

import pytest

from service.answering import (
    asks_yes_or_no,
    credits_unstated,
    figures_in,
    read_verdict,
    settling_clauses,
    stated_otherwise,
    states_other_figures,
    through_the_asked,
    with_verdict,
    without_verdict,
)


@pytest.mark.parametrize(
    ("question", "yes_or_no"),
    [
        ("Does Renault group have five brands?", True),
        ("Is Geely based on the CMA platform developed by Renault?", True),
        ("Did the two sides sign a memorandum?", True),
        ("Is it China or South Korea?", False),  # a choice, not yes or no
        ("Which platform underpins the Korean models?", False),
        ("How many employees does Renault have?", False),
    ],
)
def test_which_questions_are_answered_yes_or_no(question: str, yes_or_no: bool) -> None:
    assert asks_yes_or_no(question) is yes_or_no


def test_the_replys_own_yes_or_no_is_taken_off_its_claim() -> None:
    assert without_verdict("Yes, Renault group is allied with Nissan") == (
        "Renault group is allied with Nissan"
    )
    assert without_verdict("No: five brands") == "five brands"
    assert without_verdict("No") == ""
    assert without_verdict("Nothing but Nissan") == "Nothing but Nissan"  # not a verdict


def test_a_verdict_reads_yes_no_and_unknown_from_the_first_token() -> None:
    judged = read_verdict([("no", math.log(0.6)), ("yes", math.log(0.1)), ("unknown", -1.6)])
    assert judged is not None and judged.verdict == "no"
    assert judged.support == pytest.approx(0.7 / (0.7 + math.exp(-1.6)), abs=1e-3)
    assert read_verdict([("Yes", -0.1)]) == read_verdict([("yes", -0.1)])
    assert read_verdict([]) is None


def test_the_verdict_opens_the_answer_in_the_askers_language() -> None:
    assert with_verdict("five brands [1].", "no", "en") == "No: five brands [1]."
    assert with_verdict("five brands [1].", "yes", "fr") == "Oui: five brands [1]."
    assert with_verdict("五个品牌 [1]。", "yes", "zh") == "是：五个品牌 [1]。"


@pytest.mark.parametrize(
    ("text", "figure", "value"),
    [
        ("In the world with 18 10000 employees", "18 10000", 180_000),
        ("nearly 300 Ten thousand units", "300 Ten thousand", 3_000_000),
        ("about 3 million people", "3 million", 3_000_000),
    ],
)
def test_a_mistranslated_figure_is_read_by_rule(text: str, figure: str, value: float) -> None:
    (found,) = figures_in(text)
    assert found.text == figure and found.value == value
    assert text[found.start : found.end] == figure


def test_plain_figures_need_no_reading() -> None:
    assert figures_in("in 130 Many countries since 2050 , 20 Years") == []


def test_a_figure_the_sentence_does_not_state_is_a_false_premise() -> None:
    carbon = "Renault group has set 2050 Achieve the goal of carbon neutrality in Europe in ."
    assert states_other_figures("Has Renault group set 2030 as the year?", [carbon])
    assert not states_other_figures("Has Renault group set 2050 as the year?", [carbon])
    assert not states_other_figures("Is Renault group carbon neutral?", [carbon])


_BRANDS = "Renault group has five brands ―― Renault (Renault)、 Dacia (Dacia)、Alpine and Mobilize"
_HYBRID = (
    "The two sides will jointly develop Renault brand hybrid models based on the platform "
    "technology of Geely Holding Group ."
)
_SALES = "Renault group is in 130 Many countries sell cars , In the world with 18 10000 employees"


@pytest.mark.parametrize(
    ("question", "otherwise"),
    [
        ("Does Renault group have ten brands?", "five brands"),
        ("Does Renault group have 5 brands?", None),
        ("Is Dacia one of the brands of Renault group?", None),  # "one of" is no count
        (
            "Will the hybrid models be based on the platform technology of Renault?",
            "based on the platform technology of Geely Holding Group",
        ),
        ("Will the hybrid models be based on the platform technology of Geely?", None),
        ("Does Renault group sell cars in 50 countries?", "130 Many countries"),
        ("Does Renault group sell cars in 130 countries?", None),
        ("Does Renault group have 180,000 employees?", None),  # "18 10000" read as one count
        ("Does Renault group have 18,000 employees?", "18 10000 employees"),
        ("Is Renault group allied with Toyota?", None),  # nothing the sentences count or frame
        (
            "Is Nissan a brand of Renault group?",
            "five brands ―― Renault (Renault)、 Dacia (Dacia)、Alpine and Mobilize",
        ),
        ("Is Alpine a brand of Renault group?", None),  # listed
    ],
)
def test_a_sentence_that_counts_or_names_otherwise_is_found(
    question: str, otherwise: str | None
) -> None:
    sentences = [_SALES, _BRANDS, _HYBRID]
    found = stated_otherwise(question, sentences)
    shown = None if found is None else sentences[found.sentence][found.start : found.end]
    assert shown == otherwise


_CMA = (
    "Renault group and Geely Holding will be based on Lingke energy saving platform CMA "
    "Cooperate with the architecture , Jointly develop models suitable for the Korean market ."
)
_BY_BOTH = "The platform was developed by Renault and Geely Holding Group ."


@pytest.mark.parametrize(
    ("question", "sentences", "unstated"),
    [
        ("Is Geely based on the CMA platform developed by Renault?", [_CMA], True),
        ("Was the platform developed by Geely?", [_BY_BOTH], False),
        ("Was the platform developed by Renault?", [_CMA, _BY_BOTH], False),
        ("Was the platform developed by Nissan?", [_BY_BOTH], True),
        ("Was it developed by Geely?", ["It was developed by Geely, in Hangzhou ."], False),
        ("Will Renault grow by 2030?", [_CMA], False),  # a date, no one credited
        ("Is the platform run by the state?", [_CMA], False),  # no name credited
    ],
)
def test_a_deed_credited_to_a_name_no_sentence_credits_is_found(
    question: str, sentences: list[str], unstated: bool
) -> None:
    assert credits_unstated(question, sentences) is unstated


@pytest.mark.parametrize(
    ("question", "quote", "shown"),
    [
        (  # a leading clause that only repeats the question's names
            "Did Renault group and Geely Holding Group sign a memorandum of understanding?",
            "Renault group and Geely Holding Group , The two sides have signed a memorandum "
            "of understanding (MoU)",
            "The two sides have signed a memorandum of understanding (MoU)",
        ),
        (  # clauses with none of the question's terms
            "Has Renault group set 2030 as the year of carbon neutrality in Europe?",
            "To meet the challenges of environmental problems , Renault group has set 2050 "
            "Achieve the goal of carbon neutrality in Europe in",
            "Renault group has set 2050 Achieve the goal of carbon neutrality in Europe in",
        ),
        (
            "Does Renault group sell cars in 130 countries?",
            _SALES + " ,2020 The global sales volume was nearly 300 Ten thousand units",
            "Renault group is in 130 Many countries sell cars",
        ),
        (  # one clause, or none that bears on the question: kept whole
            "Is Renault group allied with Nissan?",
            "Renault group has strengthened its strength through the alliance with Nissan",
            "Renault group has strengthened its strength through the alliance with Nissan",
        ),
        ("Is it sunny?", "five brands , Dacia", "five brands , Dacia"),
    ],
)
def test_a_yes_no_quote_keeps_the_clauses_that_bear_on_the_question(
    question: str, quote: str, shown: str
) -> None:
    assert settling_clauses(quote, question) == shown


@pytest.mark.parametrize(
    ("question", "quote", "shown"),
    [
        (
            "Will the two sides develop Renault brand hybrid models?",
            "two sides will jointly develop Renault brand hybrid models based on the platform "
            "technology of Geely Holding Group",
            "two sides will jointly develop Renault brand hybrid models",
        ),
        (  # a name and a list of names are kept whole
            "Is Renault group allied with Nissan?",
            "Renault group has strengthened its strength through the alliance with Nissan and "
            "Mitsubishi and with its unique expertise in the field of electric vehicles",
            "Renault group has strengthened its strength through the alliance with Nissan and "
            "Mitsubishi",
        ),
        (  # a tail of fewer than three words stays
            "Did the two sides sign a memorandum of understanding?",
            "The two sides have signed a memorandum of understanding (MoU)",
            "The two sides have signed a memorandum of understanding (MoU)",
        ),
        (  # nothing asked in it: kept whole
            "Is Renault group committed?",
            "five brands",
            "five brands",
        ),
    ],
)
def test_a_yes_quote_ends_at_the_last_word_the_question_asks_about(
    question: str, quote: str, shown: str
) -> None:
    assert through_the_asked(quote, question) == shown
