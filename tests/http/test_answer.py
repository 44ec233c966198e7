"""Answering through the API with a queued upstream LLM: citations, verification, abstention."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from litestar.testing import TestClient

from service import ABSTAIN_TEXT
from service.answering import render_answer_prompt
from tests.conftest import ARTICLE_TEXT, CMA, QueuedUpstream, label_of

Client = Callable[..., TestClient[Any]]
KOREA = "Which platform underpins the Korean models?"


def _ask(client: TestClient[Any], question: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/ask", json={"question": question, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _assert_verbatim(body: dict[str, Any]) -> None:
    for c in body["citations"]:
        assert ARTICLE_TEXT[c["start"] : c["end"]] == c["text"]


def test_answer_cites_the_sentence_the_model_labelled(
    make_client: Client, upstream: QueuedUpstream
) -> None:
    client = make_client()
    label = label_of(upstream, "Lingke")  # the warm-up request carried the whole article
    upstream.queue(f"The Korean models are based on the Lingke energy saving platform CMA {label}.")
    body = _ask(client, KOREA)
    assert body["answerable"] is True and body["mode"] == "llm" and body["degraded"] is False
    assert "CMA" in body["answer"] and body["answer"].endswith("[1].")
    (citation,) = body["citations"]
    assert CMA in citation["text"]
    _assert_verbatim(body)
    assert citation["sentence_id"].startswith("renault-geely-mou:")
    assert body["passages"] and set(body["timings_ms"]) >= {"retrieve", "llm", "total"}
    assert upstream.questions == [f"Question: {KOREA}"]


def test_a_wrong_model_label_is_replaced_by_the_supporting_sentence(
    make_client: Client, upstream: QueuedUpstream
) -> None:
    client = make_client()
    wrong = label_of(upstream, "About Renault group")
    upstream.queue(f"The Korean models use the Lingke energy saving platform CMA {wrong}.")
    body = _ask(client, KOREA)
    assert body["answerable"] is True
    assert [CMA in c["text"] for c in body["citations"]] == [True]
    _assert_verbatim(body)


def test_unsupported_claims_are_dropped_and_the_rest_renumbered(
    make_client: Client, upstream: QueuedUpstream
) -> None:
    client = make_client()
    cma = label_of(upstream, "Lingke")
    upstream.queue(
        f"Renault Samsung builds them in Busan [S1]. They use the Lingke platform CMA {cma}."
    )
    body = _ask(client, KOREA)
    assert "Busan" not in body["answer"]
    # The claim is shown in its sentence's words, not the reply's ("Lingke platform").
    assert body["answer"] == "Lingke energy saving platform CMA [1]."
    assert len(body["citations"]) == 1 and CMA in body["citations"][0]["text"]


def test_invented_figures_make_the_service_abstain(
    make_client: Client, upstream: QueuedUpstream
) -> None:
    client = make_client()
    upstream.queue("Geely's annual revenue is 10 billion yuan [S4].")
    body = _ask(client, "What is Geely Holding Group's annual revenue?")
    assert body["answerable"] is False
    assert body["answer"] == ABSTAIN_TEXT and body["citations"] == []


def test_model_refusal_means_abstention(make_client: Client, upstream: QueuedUpstream) -> None:
    client = make_client()
    upstream.queue("NOT FOUND")
    body = _ask(client, "In which factory will the hybrid cars be built?")
    assert body["answerable"] is False and body["citations"] == []


def test_supported_claim_that_misses_the_question_is_not_an_answer(
    make_client: Client, upstream: QueuedUpstream
) -> None:
    client = make_client()
    label = label_of(upstream, "jointly develop Renault brand hybrid")
    upstream.queue(f"The two sides will jointly develop Renault brand hybrid models {label}.")
    # A document's title counts as context of each of its sentences: the article's
    # ("... hybrid cars for China and South Korea") names the cars, not the factory.
    body = _ask(client, "Which factory will build the hybrid engines?")
    assert body["answerable"] is False and body["citations"] == []


def test_refusal_is_overruled_when_a_sentence_plainly_answers(
    make_client: Client, upstream: QueuedUpstream
) -> None:
    client = make_client()
    upstream.queue("NOT FOUND")
    body = _ask(client, "Which energy saving platform will the Korean models be based on?")
    assert body["answerable"] is True
    assert CMA in body["citations"][0]["text"]
    _assert_verbatim(body)


def test_off_topic_question_abstains_without_calling_the_llm(
    make_client: Client, upstream: QueuedUpstream
) -> None:
    client = make_client()
    before = len(upstream.requests)
    body = _ask(client, "What is the boiling point of mercury?")
    assert body["answerable"] is False and body["citations"] == []
    assert len(upstream.requests) == before


def test_extractive_mode_answers_without_the_llm(
    make_client: Client, upstream: QueuedUpstream
) -> None:
    client = make_client()
    before = len(upstream.requests)
    body = _ask(client, "How many employees does Renault group have worldwide?",
                answer_mode="extractive", top_k=2)  # fmt: skip
    assert len(upstream.requests) == before
    assert body["mode"] == "extractive" and body["degraded"] is False
    assert "18 10000 employees" in body["citations"][0]["text"]
    assert body["answer"].endswith(" [1].") and len(body["passages"]) <= 2
    _assert_verbatim(body)


def test_llm_down_falls_back_to_a_degraded_extractive_answer(
    make_client: Client, upstream: QueuedUpstream
) -> None:
    client = make_client()
    before = len(upstream.requests)
    upstream.queue(*[httpx.ConnectError("refused")] * 3)
    body = _ask(client, KOREA)
    assert len(upstream.requests) - before == 3  # one try and two retries
    assert body["degraded"] is True and body["mode"] == "extractive"
    assert body["answerable"] is True and CMA in body["citations"][0]["text"]
    _assert_verbatim(body)


def test_upstream_5xx_is_retried(make_client: Client, upstream: QueuedUpstream) -> None:
    client = make_client()
    label = label_of(upstream, "Lingke")
    upstream.queue(503, f"They use the Lingke energy saving platform CMA {label}.")
    body = _ask(client, KOREA)
    assert body["degraded"] is False and body["answerable"] is True


def test_upstream_4xx_is_not_retried_and_degrades(
    make_client: Client, upstream: QueuedUpstream
) -> None:
    client = make_client()
    before = len(upstream.requests)
    upstream.queue(400)
    body = _ask(client, KOREA)
    assert len(upstream.requests) - before == 1
    assert body["degraded"] is True


def test_prompt_puts_instructions_and_sources_first_and_the_question_last() -> None:
    one = render_answer_prompt(["Alpha.", "Beta."], "First question?")
    two = render_answer_prompt(["Alpha.", "Beta."], "Second question?")
    assert one[0] == two[0]  # the cacheable prefix does not depend on the question
    assert "[S1] Alpha.\n[S2] Beta." in one[0]["content"]
    assert one[-1] == {"role": "user", "content": "Question: First question?"}
