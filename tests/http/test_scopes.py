"""Asking within a scope: ``filter`` on /v1/ask, its stream, /v1/search and the chat endpoint
finds and cites only the documents it names; a filter that names none is abstained."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import TestClient
from pydantic import SecretStr

Client = Callable[..., TestClient[Any]]
ADMIN = {"Authorization": "Bearer admin-1"}
PLANTS = (
    "The battery plant in Ningbo opened in 2021. It makes batteries for the hybrid models. "
    "The plant employs 4,000 people."
)
DEPOTS = "The parts depot in Lyon opened in 2022. It ships batteries to dealers in France."


@pytest.fixture
def client(make_client: Client) -> TestClient[Any]:
    client = make_client(admin_keys=SecretStr("admin-1"))
    for doc_id, text, year in (("plants", PLANTS, "2021"), ("depots", DEPOTS, "2022")):
        added = client.post(
            "/v1/documents",
            json={"doc_id": doc_id, "text": text, "metadata": {"year": year, "team": "ops"}},
            headers=ADMIN,
        )
        assert added.status_code == 201, added.text
    return client


def _ask(client: TestClient[Any], question: str, scope: dict[str, Any] | None) -> Any:
    body: dict[str, Any] = {"question": question, "answer_mode": "extractive"}
    if scope is not None:
        body["filter"] = scope
    return client.post("/v1/ask", json=body)


def test_a_question_finds_and_cites_only_the_documents_in_scope(client: TestClient[Any]) -> None:
    question = "Where is the plant that makes batteries?"
    everywhere = _ask(client, question, None).json()
    assert everywhere["citations"][0]["doc_id"] == "plants"
    for scope in ({"doc_ids": ["depots"]}, {"metadata": {"year": ["2022", "2023"]}},
                  {"doc_ids": ["depots", "plants"], "metadata": {"year": "2022"}}):  # fmt: skip
        body = _ask(client, question, scope).json()
        assert {c["doc_id"] for c in body["citations"]} <= {"depots"}, scope
        assert {p["doc_id"] for p in body["passages"]} <= {"depots"}, scope
    search = client.post(
        "/v1/search", json={"query": "batteries", "top_k": 10, "filter": {"doc_ids": ["plants"]}}
    ).json()
    assert search["sentences"] and {s["doc_id"] for s in search["sentences"]} == {"plants"}


def test_a_filter_that_matches_nothing_is_abstained_without_searching(
    client: TestClient[Any],
) -> None:
    for scope in ({"doc_ids": ["no-such-doc"]}, {"metadata": {"year": "1999"}}):
        body = _ask(client, "Where is the plant that makes batteries?", scope).json()
        assert body["answerable"] is False and body["citations"] == [] and body["passages"] == []
        assert body["abstained_because"] == "no_documents_in_scope"


@pytest.mark.parametrize(
    ("scope", "field"),
    [
        ({"doc_ids": "plants"}, "filter.doc_ids"),
        ({"metadata": {"year": 2021}}, "filter.metadata"),
        ({"metadata": {"year": []}}, "filter.metadata"),
        ({"collection": "hr"}, "collection"),
    ],
)
def test_a_malformed_filter_is_a_400_naming_the_field(
    client: TestClient[Any], scope: dict[str, Any], field: str
) -> None:
    response = _ask(client, "Where is the plant?", scope)
    assert response.status_code == 400
    assert field in response.json()["extra"][0]["key"] + response.json()["detail"]


def test_the_chat_endpoint_takes_the_filter_as_an_extra_body_field(
    client: TestClient[Any], upstream: Any
) -> None:
    upstream.queue("The depot ships batteries to dealers in France [S2].")
    response = client.post(
        "/v1/chat/completions",
        json={
            "model": "citeqa",
            "messages": [{"role": "user", "content": "Where does the depot ship batteries?"}],
            "filter": {"doc_ids": ["depots"]},
        },
    )
    assert response.status_code == 200, response.text
    asked = [r for r in upstream.requests if "depot" in r["messages"][-1]["content"]]
    prompt = asked[-1]["messages"][0]["content"]
    # Only the scope reaches the LLM: the whole small corpus would be in the prompt otherwise.
    assert "Lyon" in prompt and "Ningbo" not in prompt and "Geely" not in prompt
    content = response.json()["choices"][0]["message"]["content"]
    assert "France" in content


def test_the_stream_honours_the_filter(client: TestClient[Any]) -> None:
    body = {
        "question": "Where is the plant that makes batteries?",
        "answer_mode": "extractive",
        "stream": True,
        "filter": {"doc_ids": ["depots"]},
    }
    text = client.post("/v1/ask", json=body).text
    assert "event: done" in text and '"doc_id":"depots"' in text and '"plants"' not in text


def test_documents_sent_with_the_question_are_answered_over_alone_and_never_stored(
    client: TestClient[Any], make_client: Client
) -> None:
    before = client.get("/v1/documents").json()["documents"]
    memo = "The canteen opens at noon. The new canteen in Ghent serves 300 meals a day."
    body = {
        "question": "How many meals does the canteen in Ghent serve?",
        "answer_mode": "extractive",
        "documents": [{"title": "Memo", "text": memo}, {"text": DEPOTS}],
    }
    answer = client.post("/v1/ask", json=body).json()
    (citation,) = answer["citations"]
    assert citation["doc_id"] == "given-1" and "300 meals" in citation["text"]
    assert memo[citation["start"] : citation["end"]] == citation["text"]
    assert client.get("/v1/documents").json()["documents"] == before  # nothing stored
    # Asked of the index, the same question has no answer: the memo was never in it.
    assert _ask(client, body["question"], None).json()["answerable"] is False
    small = make_client(max_given_chars=50)
    too_big = small.post("/v1/ask", json=body)
    assert too_big.status_code == 413 and "CITEQA_MAX_GIVEN_CHARS" in too_big.json()["detail"]
