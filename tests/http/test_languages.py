"""Questions in other languages than the documents, and documents in Chinese, over the API.

The queued upstream plays the LLM: it translates the question, replies in the documents'
language, and renders the verified quote in the asker's language.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import TestClient
from pydantic import SecretStr

from service.answering import ABSTAIN_TEXTS
from tests.conftest import ARTICLE_TEXT, CMA, QueuedUpstream, cma_reply, label_of

Client = Callable[..., TestClient[Any]]
KOREA_ZH = "哪些车型将基于CMA平台？"
KOREA_EN = "Which models will be based on the CMA platform?"
ADMIN = {"Authorization": "Bearer admin-1"}
PLANT_ZH = "武汉新工厂将于五月投产，年产能为十万辆。"


def _ask(client: TestClient[Any], question: str) -> dict[str, Any]:
    response = client.post("/v1/ask", json={"question": question})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _system(request: dict[str, Any]) -> str:
    return str(request["messages"][0]["content"])


def test_a_chinese_question_is_answered_in_chinese_beside_its_english_quote(
    make_client: Client, upstream: QueuedUpstream
) -> None:
    client = make_client()
    upstream.queue(KOREA_EN, cma_reply(upstream), "1. 领克节能平台CMA", "1. Lingke platform CMA")
    body = _ask(client, KOREA_ZH)
    assert body["answerable"] is True
    # The rendering, then the quote it renders.
    assert body["answer"] == "领克节能平台CMA [1]（“Lingke energy saving platform CMA”）。"
    (citation,) = body["citations"]
    assert CMA in citation["text"]
    assert ARTICLE_TEXT[citation["start"] : citation["end"]] == citation["text"]
    translate, answer, render, back = upstream.requests[-4:]
    assert "into English" in _system(translate) and translate["messages"][1]["content"] == KOREA_ZH
    assert answer["messages"][-1]["content"] == f"Question: {KOREA_EN}"  # asked in English
    assert "into Chinese" in _system(render)
    # Its names are checked by putting it back into English: Lingke came back as Lingke.
    assert (
        "into English" in _system(back) and back["messages"][1]["content"] == "1. 领克节能平台CMA"
    )
    assert {"translate", "render"} <= set(body["timings_ms"])


def test_a_rendering_whose_names_do_not_come_back_is_redone_with_the_names_kept(
    make_client: Client, upstream: QueuedUpstream
) -> None:
    client = make_client()
    wrong, back, kept = "1. 林肯节能平台CMA", "1. Lincoln platform CMA", "1. {1}节能平台{2}"
    upstream.queue(KOREA_EN, cma_reply(upstream), wrong, back, kept)
    body = _ask(client, KOREA_ZH)
    assert body["answer"] == "Lingke节能平台CMA [1]（“Lingke energy saving platform CMA”）。"
    # The names never reach the LLM the second time: they cannot come back wrong.
    assert upstream.requests[-1]["messages"][1]["content"] == "1. {1} energy saving platform {2}"


@pytest.mark.parametrize(
    "rendering",
    [
        "1. 2025年起基于{1}节能平台{2}",  # a figure the quote does not state
        "1. 林肯节能平台{2}",  # a name written out instead of kept
        "1. 基于{1}节能平台{2}和{3}",  # a name the quote does not hold
    ],
)
def test_a_rendering_that_adds_or_changes_a_name_or_a_figure_is_not_shown(
    make_client: Client, upstream: QueuedUpstream, rendering: str
) -> None:
    client = make_client()
    wrong, back = "1. 丰田节能平台CMA", "1. Toyota platform CMA"
    upstream.queue(KOREA_EN, cma_reply(upstream), wrong, back, rendering)
    body = _ask(client, KOREA_ZH)
    assert body["answerable"] is True
    assert body["answer"] == "Lingke energy saving platform CMA [1]."  # the verified quote alone


def test_an_abstention_is_said_in_the_askers_language(
    make_client: Client, upstream: QueuedUpstream
) -> None:
    client = make_client()
    upstream.queue("Who is the chief executive of Geely?", "NOT FOUND")
    body = _ask(client, "吉利控股集团的首席执行官是谁？")
    assert body["answerable"] is False and body["citations"] == []
    assert body["answer"] == ABSTAIN_TEXTS["zh"]


def test_an_english_question_is_never_translated(
    make_client: Client, upstream: QueuedUpstream
) -> None:
    client = make_client()
    upstream.queue(cma_reply(upstream))
    before = len(upstream.requests)
    body = _ask(client, "Which platform underpins the Korean models?")
    assert body["answerable"] is True and "translate" not in body["timings_ms"]
    assert len(upstream.requests) == before + 1  # the answer alone


def test_a_chinese_document_is_answered_in_chinese_and_in_english(
    make_client: Client, upstream: QueuedUpstream
) -> None:
    client = make_client(admin_keys=SecretStr("admin-1"))
    added = client.post(
        "/v1/documents", headers=ADMIN,
        json={"doc_id": "wuhan", "title": "武汉工厂", "text": f"吉利发布公告。{PLANT_ZH}"},
    )  # fmt: skip
    assert added.status_code == 201, added.text
    assert added.json()["documents"][0]["sentences"] == 2  # split at 。
    # In Chinese: the sentence is found by its own words (no translation) and quoted as it is.
    upstream.queue("新工厂将于五月投产 [S1].")
    body = _ask(client, "武汉新工厂什么时候投产？")
    assert body["answerable"] is True and "五月投产" in body["answer"]
    (citation,) = body["citations"]
    assert citation["doc_id"] == "wuhan" and citation["text"] == PLANT_ZH
    # In English: found through the question in Chinese, the quote rendered in English.
    upstream.queue(
        "武汉新工厂什么时候投产？", "新工厂将于五月投产 [S1].", "1. The plant opens in May"
    )
    body = _ask(client, "When will the new Wuhan plant start production?")
    assert body["answerable"] is True
    assert (
        body["answer"].startswith("The plant opens in May [1] (“") and "五月投产" in body["answer"]
    )
    assert body["citations"][0]["text"] == PLANT_ZH


def test_with_cross_language_off_the_question_is_searched_as_asked(
    make_client: Client, upstream: QueuedUpstream
) -> None:
    client = make_client(cross_language="off")
    body = _ask(client, KOREA_ZH)
    assert "translate" not in body["timings_ms"] and "render" not in body["timings_ms"]
    assert not [r for r in upstream.requests if _system(r).startswith("You translate")]


def test_a_single_rendering_may_come_without_its_number(
    make_client: Client, upstream: QueuedUpstream
) -> None:
    client = make_client()
    upstream.queue(KOREA_EN, cma_reply(upstream), "领克节能平台CMA。", "Lingke platform CMA")
    body = _ask(client, KOREA_ZH)
    assert body["answer"].startswith("领克节能平台CMA [1]（“")


KEY_MARKETS_FR = "Quels sont les marchés clés de la coopération ?"
KEY_MARKETS_EN = "Which countries are the key markets of the cooperation?"


def _ask_key_markets_in_french(
    make_client: Client, upstream: QueuedUpstream, rendering: str, back: str
) -> dict[str, Any]:
    """Ask in French; the LLM replies "China and South Korea", renders it, puts it back."""
    client = make_client()
    reply = f"China and South Korea {label_of(upstream, 'China and South Korea')}."
    upstream.queue(KEY_MARKETS_EN, reply, rendering, back)
    return _ask(client, KEY_MARKETS_FR)


def test_a_rendering_that_translates_a_name_is_shown_when_the_name_comes_back(
    make_client: Client, upstream: QueuedUpstream
) -> None:
    body = _ask_key_markets_in_french(
        make_client, upstream, "1. Chine et Corée du Sud", "1. China and South Korea"
    )
    assert body["answer"] == "Chine et Corée du Sud [1] (“China and South Korea”)."
    back = upstream.requests[-1]
    assert "into English" in _system(back)
    assert back["messages"][1]["content"] == "1. Chine et Corée du Sud"


def test_a_rendering_whose_name_comes_back_as_another_is_not_shown(
    make_client: Client, upstream: QueuedUpstream
) -> None:
    rendering, back = "1. Chine et Japon", "1. China and Japan"
    body = _ask_key_markets_in_french(make_client, upstream, rendering, back)
    assert body["answer"] == "China and South Korea [1]."  # the verified quote alone
    assert "China and South Korea" in body["citations"][0]["text"]
