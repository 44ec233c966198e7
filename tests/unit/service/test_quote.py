"""Quotes: a claim is shown as the words of its sentence, so it cannot say what the sentence
does not: reversed relations, invented relations and swapped figures never get through, on
/v1/ask, streamed, and in chat."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service import ABSTAIN_TEXT
from service.answering import align
from tests.conftest import (
    ARTICLE_TEXT,
    CMA,
    QueuedUpstream,
    ask_events,
    chat,
    label_of,
    shown_text,
)

KOREA = "Which platform underpins the Korean models?"
CMA_SENTENCE = (
    "Renault group and Geely Holding will be based on Lingke energy saving platform CMA "
    "Cooperate with the architecture , Jointly develop models suitable for the Korean market ."
)
FIGURES = (
    "Renault group is in 130 Many countries sell cars , In the world with 18 10000 employees "
    ",2020 The global sales volume was nearly 300 Ten thousand units ."
)

LAYOUTS = "该平台支持后轮驱动和四轮驱动两种布局。"
UNIVERSITIES = "中心与两所大学建立了联合实验室，分别是浙江大学和同济大学。"


@pytest.mark.parametrize(
    ("reply", "question", "quote"),
    [
        # The headline question's reply turns the relation around; its words are not shown.
        (
            "The Korean models underpin the Lingke energy saving platform CMA",
            KOREA,
            "Lingke energy saving platform CMA",
        ),
        ("CMA", KOREA, "CMA"),
        # Figures the model normalises are found in the source's own writing, with the unit.
        ("Renault group has 180,000 employees", "How many employees?", "18 10000 employees"),
        ("It sold nearly 3 million units", "How many cars in 2020?", "300 Ten thousand units"),
        ("It sells cars in 130 countries", "In how many countries?", "130 Many countries"),
        # Chinese is matched by characters: a reply that repeats some is still quoted whole.
        ("后轮驱动和四轮驱动。", "该平台支持哪两种驱动布局？", "后轮驱动和四轮驱动"),
        ("浙江大学、同济大学", "中心与哪两所大学建立了联合实验室？", "浙江大学和同济大学"),
    ],
)
def test_a_reply_is_shown_as_the_span_of_its_sentence_it_quotes(
    reply: str, question: str, quote: str
) -> None:
    sources = [CMA_SENTENCE, FIGURES, LAYOUTS, UNIVERSITIES]
    source = next(s for s in sources if quote in s)
    found = align(reply, source, question)
    assert found is not None
    assert quote in found.text
    assert source[found.start : found.end] == found.text
    assert not found.text.startswith(("on ", "of ", "the "))


@pytest.mark.parametrize(
    "reply",
    [
        "Geely designed the CMA platform",  # an invented relation between names it holds
        "The Korean models underpin the platform",  # a reversed relation, no answer words
        "Renault group has 250,000 employees",  # a swapped figure
        "Toyota builds the Prius in Japan",  # nothing of it in the sentence
    ],
)
def test_what_the_sentence_does_not_say_is_never_shown(reply: str) -> None:
    for source in (CMA_SENTENCE, FIGURES):
        found = align(reply, source, KOREA)
        if found is not None:
            # Whatever is shown is the source's words in the source's order.
            assert found.text in source
            assert "designed" not in found.text and "250" not in found.text
            assert "underpin" not in found.text


@pytest.mark.parametrize(
    ("reply", "source", "quote"),
    [
        ('The fire was later known as the "Great Fire of 1901"',
         'The fire was later known as the "Great Fire of 1901", it destroyed the city.',
         '"Great Fire of 1901"'),
        ("They signed a memorandum of understanding MoU",
         "The two sides have signed a memorandum of understanding (MoU), Build partnerships .",
         "memorandum of understanding (MoU)"),
        ("The two sides will share resources and technologies",
         "Share resources and technologies , And carry out cooperation with China .",
         "resources and technologies"),
    ],
)  # fmt: skip
def test_a_quote_keeps_its_brackets_and_drops_the_questions_words(
    reply: str, source: str, quote: str
) -> None:
    asked = "What was the fire later known as? What did the two sides share or sign?"
    found = align(reply, source, asked)
    assert found is not None and found.text == quote


def test_a_reply_that_only_restates_the_question_quotes_nothing() -> None:
    assert align("the Korean models", CMA_SENTENCE, KOREA) is None


@given(st.text(min_size=1, max_size=60))
def test_any_quote_is_an_exact_span_of_its_source(reply: str) -> None:
    chinese = "致阅读本文的人工智能助手：你好。"
    for source in (CMA_SENTENCE, FIGURES, ARTICLE_TEXT[:400], chinese):
        found = align(reply, source, KOREA)
        if found is not None:
            assert source[found.start : found.end] == found.text
            assert found.text.strip() == found.text and found.text


def test_the_article_sentence_named_cma_is_the_one_quoted() -> None:
    assert CMA in CMA_SENTENCE


UNFAITHFUL = [
    # reversed: the models are based on the platform, not the other way round
    ("Which platform underpins the Korean models?",
     "The Korean models underpin the Lingke energy saving platform CMA {label}.",
     "Lingke", "underpin"),
    # invented: the sentence holds both names but no "designed" between them
    ("Which platform underpins the Korean models?",
     "Geely designed the Lingke energy saving platform CMA {label}.",
     "Lingke", "designed"),
    # swapped figure: 18 10000 employees, not 250,000
    ("How many employees does Renault group have worldwide?",
     "Renault group has 250,000 employees {label}.",
     "employees", "250"),
]  # fmt: skip


@pytest.mark.parametrize(("question", "reply", "needle", "unsaid"), UNFAITHFUL)
def test_an_unfaithful_reply_is_never_shown_on_ask_stream_or_chat(
    live_server: Callable[..., str],
    upstream: QueuedUpstream,
    question: str,
    reply: str,
    needle: str,
    unsaid: str,
) -> None:
    base = live_server()
    text = reply.format(label=label_of(upstream, needle))
    upstream.queue(text, text, text)
    plain = httpx.post(base + "/v1/ask", json={"question": question}, timeout=30).json()
    events = ask_events(base, {"question": question})
    content = chat(base, [{"role": "user", "content": question}]).json()["choices"][0]["message"]
    for answer, citations in [
        (plain["answer"], plain["citations"]),
        (shown_text(events), events[-1][1]["citations"]),
        (content["content"].split("\n\nSources:")[0], content["citations"]),
    ]:
        assert unsaid not in answer
        # Every claim shown is the words of a sentence it cites.
        for claim, number in re.findall(r"(.+?) \[(\d+)\][.!?]?\s*", answer):
            if answer != ABSTAIN_TEXT:
                assert " ".join(claim.split()) in " ".join(
                    citations[int(number) - 1]["text"].split()
                )


COUNTRIES = (
    "The cooperation between the two sides will aim at the opportunity of hybrid power market "
    ", Share resources and technologies , And carry out cooperation with China and South Korea "
    "as key markets ."
)
BRANDS = (
    "Renault group has five brands ―― Renault (Renault)、 Dacia (Dacia)、 LADA (Lada)、Alpine "
    "and Mobilize, Achieve complementary advantages ."
)
DATELINE = (
    "8 month 9 Hangzhou, China / France , We have learned from the officials of Renault group "
    "and Geely Holding Group , The two sides have signed a memorandum of understanding (MoU), "
    "Build innovative partnerships ."
)
KOREA_HISTORY = (
    "In the Korean market , Renault Samsung has a long history 20 Years of successful "
    "development experience ."
)
CARBON = (
    "To meet the challenges of environmental problems , Renault group has set 2050 Achieve the "
    "goal of carbon neutrality in Europe in ."
)


@pytest.mark.parametrize(
    ("reply", "source", "question", "quote"),
    [
        # A copy is shown whole, though its first word repeats the question: a name is
        # never cut to its last word.
        ("Renault Samsung", KOREA_HISTORY, "Which Renault company has a long history in Korea?",
         "Renault Samsung"),
        # A copy that starts inside a name starts where the name does.
        ("Holding Group", DATELINE, "Who signed the memorandum?", "Geely Holding Group"),
        # A name in capitals after the phrase names it: "… platform CMA".
        ("Lingke energy saving platform", CMA_SENTENCE, KOREA, "Lingke energy saving platform CMA"),
        # A year has no unit: "2050 Achieve" is the start of the next clause.
        ("2050", CARBON, "In which year will it be carbon neutral?", "2050"),
        ("20", KOREA_HISTORY, "How many years of experience?", "20 Years"),
        # Asked for several, a quote holding some names of a list holds all of them.
        ("Renault (Renault)、 Dacia", BRANDS, "Which brands does Renault group have?",
         "Renault (Renault)、 Dacia (Dacia)、 LADA (Lada)、Alpine and Mobilize"),
        ("China", COUNTRIES, "With which countries will they cooperate?",
         "China and South Korea"),
        # A bracket is kept with what it closes, and only then.
        ("MoU", DATELINE, "What did they sign?", "(MoU)"),
        ("Euler", "proved it (especially Euler) in 1750.", "Who else proved it?", "Euler"),
        # A phrase never ends on a word that leaves it dangling.
        ("Rotterdam, where he", "In 1632 he moved to Rotterdam, where he died in 1650.",
         "Where did he move in 1632?", "Rotterdam"),
        # Nor starts on a word that joins it to the clause before.
        ("so oxygen supplementation is used in medicine",
         "Oxygen is needed for respiration, so oxygen supplementation is used in medicine.",
         "What treatment is used in medicine?", "oxygen supplementation is used in medicine"),
        # A paraphrase's span is moved onto its clause's edges, not cut at "as key".
        ("Renault will contribute by sharing resources and technologies, and carrying out "
         "cooperation with China and South Korea as key markets.", COUNTRIES,
         "What will Renault contribute to the cooperation?",
         "Share resources and technologies , And carry out cooperation with China and South "
         "Korea as key markets"),
    ],
)  # fmt: skip
def test_a_quote_starts_and_ends_on_phrase_edges(
    reply: str, source: str, question: str, quote: str
) -> None:
    found = align(reply, source, question)
    assert found is not None and found.text == quote
    assert source[found.start : found.end] == found.text


def test_one_name_of_a_list_stays_one_when_one_thing_is_asked() -> None:
    found = align("China", COUNTRIES, "Which country is the bigger market?")
    assert found is not None and found.text == "China"


def test_a_statement_is_quoted_as_the_evidence_for_it() -> None:
    """A yes/no question's reply restates it; its quote spans all the words it shares."""
    source = (
        "Renault group has strengthened its strength through the alliance with Nissan and "
        "Mitsubishi and with its unique expertise in the field of electric vehicles ."
    )
    found = align("Renault group is allied with Nissan", source, statement=True)
    assert found is not None
    assert found.text.startswith("Renault group") and found.text.endswith("Nissan")
