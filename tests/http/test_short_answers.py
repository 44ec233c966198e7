"""What a reader sees: the shortest phrase that answers, a yes or no before the quote of a
yes/no question, and the reading of a mistranslated figure beside it, alike on /v1/ask, its
stream and the chat endpoint (plain and streamed, through the official client)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import httpx
import openai

from tests.conftest import QueuedUpstream, Scripted, ask_events, chat, label_of, shown_text, yes

Server = Callable[..., str]


def _three_way(verdict: str) -> Scripted:
    """The yes/no judge's first token: the verdict likeliest, "unknown" unlikely."""
    other = "yes" if verdict == "no" else "no"
    top = [(verdict, math.log(0.8)), (other, math.log(0.15)), ("unknown", math.log(0.05))]
    return Scripted([verdict], first_top=top)


def _judged_yes(base: str, upstream: QueuedUpstream, reply: str, question: str) -> Any:
    """/v1/ask's answer to ``question`` when the LLM replies ``reply`` and the judge says yes."""
    upstream.queue(reply, _three_way("yes"))
    return httpx.post(base + "/v1/ask", json={"question": question}, timeout=30).json()


def _streamed_chat(base: str, question: str) -> str:
    with openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0) as client:
        chunks = list(
            client.chat.completions.create(
                model="citeqa", messages=[{"role": "user", "content": question}], stream=True
            )
        )
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def _every_way(base: str, question: str) -> tuple[dict[str, Any], str, str, str]:
    """The answer of /v1/ask; the text its stream showed; chat's content, plain and streamed."""
    plain = httpx.post(base + "/v1/ask", json={"question": question}, timeout=30).json()
    events = ask_events(base, {"question": question})
    assert events[-1][1]["answer"] == plain["answer"]
    content = chat(base, [{"role": "user", "content": question}]).json()
    return (
        plain,
        shown_text(events),
        content["choices"][0]["message"]["content"],
        (_streamed_chat(base, question)),
    )


def test_a_false_premise_is_answered_no_before_the_quote_that_shows_it(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server(support_judge=True)
    # The reply says yes; its "yes" is not trusted, the judge's verdict is.
    reply = f"Yes, five brands {label_of(upstream, 'five brands')}"
    for _ in range(4):
        upstream.queue(reply, _three_way("no"))
    question = "Does Renault group have ten brands?"
    plain, streamed, content, streamed_chat = _every_way(base, question)
    assert plain["answer"] == "No: five brands [1]." and plain["verdict"] == "no"
    assert "five brands" in plain["citations"][0]["text"]
    assert plain["support"] == 0.95  # P(yes) + P(no): the text settles the question
    assert streamed == plain["answer"]
    assert content.startswith("No: five brands [1].") and streamed_chat == content
    judged = upstream.requests[-1]["messages"][-1]["content"]
    assert question in judged and "five brands" in judged


def test_a_sentence_that_names_another_is_no_though_the_reply_and_judge_say_yes(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server(support_judge=True)
    hybrid = label_of(upstream, "hybrid models")
    upstream.queue(f"Yes, they will be based on the platform technology of Renault {hybrid}.",
                   _three_way("yes"))  # fmt: skip
    question = "Will the hybrid models be based on the platform technology of Renault?"
    body = httpx.post(base + "/v1/ask", json={"question": question}, timeout=30).json()
    # The sentence's own words that say otherwise are the quote, under the verdict.
    assert body["verdict"] == "no"
    assert body["answer"] == "No: based on the platform technology of Geely Holding Group [1]."
    assert "hybrid models" in body["citations"][0]["text"]


def test_a_name_left_out_of_the_list_a_sentence_gives_is_no_though_the_judge_says_yes(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server(support_judge=True)
    reply = f"Yes, through the alliance with Nissan {label_of(upstream, 'alliance with Nissan')}."
    body = _judged_yes(base, upstream, reply, "Is Nissan a brand of Renault group?")
    assert body["verdict"] == "no"
    assert body["answer"].startswith("No: five brands ―― Renault (Renault)")
    assert body["answer"].endswith("Alpine and Mobilize [1].")
    assert "five brands" in body["citations"][0]["text"]


def test_a_refused_yes_no_question_is_judged_on_the_sentence_that_counts_otherwise(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server(support_judge=True)
    upstream.queue("NOT FOUND", _three_way("yes"))
    question = "Does Renault group have ten brands?"
    body = httpx.post(base + "/v1/ask", json={"question": question}, timeout=30).json()
    assert body["answer"] == "No: five brands [1]." and body["verdict"] == "no"
    judged = upstream.requests[-1]["messages"][-1]["content"]
    assert "five brands" in judged and "300 Ten thousand" not in judged


def test_a_yes_answer_quotes_the_clause_that_settles_it_not_the_names_the_question_gave(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server(support_judge=True)
    memorandum = label_of(upstream, "memorandum of understanding")
    upstream.queue(
        "Yes, Renault group and Geely Holding Group , The two sides have signed a "
        f"memorandum of understanding (MoU) {memorandum}.",
        _three_way("yes"),
    )
    question = "Did Renault group and Geely Holding Group sign a memorandum of understanding?"
    body = httpx.post(base + "/v1/ask", json={"question": question}, timeout=30).json()
    assert body["verdict"] == "yes"
    assert body["answer"] == (
        "Yes: The two sides have signed a memorandum of understanding (MoU) [1]."
    )
    assert body["citations"][0]["text"].startswith("[ Car home")


def test_a_yes_quote_ends_where_what_was_asked_ends_and_a_no_quote_does_not(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server(support_judge=True)
    hybrid = label_of(upstream, "hybrid models")
    reply = (
        "Yes, two sides will jointly develop Renault brand hybrid models based on the platform "
        f"technology of Geely Holding Group {hybrid}."
    )
    question = "Will the two sides develop Renault brand hybrid models?"
    upstream.queue(reply, _three_way("yes"), reply, _three_way("no"))
    yes = httpx.post(base + "/v1/ask", json={"question": question}, timeout=30).json()
    assert yes["answer"] == "Yes: two sides will jointly develop Renault brand hybrid models [1]."
    no = httpx.post(base + "/v1/ask", json={"question": question}, timeout=30).json()
    assert no["answer"].startswith("No: ") and "Geely Holding Group [1]." in no["answer"]


def test_a_yes_no_question_the_text_does_not_settle_is_abstained(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server(support_judge=True)
    reply = f"Yes, five brands {label_of(upstream, 'five brands')}"
    unknown = Scripted(["unknown"], first_top=[("unknown", math.log(0.9)), ("yes", -3.0)])
    upstream.queue(reply, unknown)
    body = httpx.post(
        base + "/v1/ask", json={"question": "Does Renault group sell trucks?"}, timeout=30
    ).json()
    assert body["answerable"] is False and body["verdict"] is None and body["citations"] == []


def test_a_deed_credited_to_a_name_the_text_does_not_credit_is_abstained_though_judged_yes(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server(support_judge=True)
    reply = f"Yes, Geely is based on the CMA platform {label_of(upstream, 'Lingke')}."
    question = "Is Geely based on the CMA platform developed by Renault?"
    body = _judged_yes(base, upstream, reply, question)
    # The sentence says nothing of who developed CMA: neither yes nor no is the text's.
    assert body["answerable"] is False and body["verdict"] is None and body["citations"] == []
    assert body["support"] == 0.0


def test_a_mistranslated_figure_carries_its_reading_beside_the_verbatim_quote(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server()
    reply = f"18 10000 employees {label_of(upstream, '18 10000')}"
    upstream.queue(reply, reply, reply, reply)
    plain, streamed, content, streamed_chat = _every_way(
        base, "How many employees does Renault group have?"
    )
    assert plain["answer"] == "18 10000 employees [1]." == streamed
    assert plain["figures"] == [
        {"text": "18 10000", "value": 180000.0, "reading": "180,000", "citation": 1}
    ]
    assert content.startswith("18 10000 employees [1]. (18 10000 = 180,000)")
    assert streamed_chat == content


def test_a_copied_phrase_is_shown_whole_though_the_question_names_its_first_word(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server()
    upstream.queue(f"Renault Samsung {label_of(upstream, 'Renault Samsung')}")
    body = httpx.post(
        base + "/v1/ask",
        json={"question": "Which Renault company has 20 years of experience in Korea?"},
        timeout=30,
    ).json()
    assert body["answer"] == "Renault Samsung [1]."
    assert body["verdict"] is None and body["figures"] == []


def test_the_judges_phrase_shortens_the_reply_and_never_replaces_it(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server(support_judge=True)
    question = "What will the two sides share in their cooperation?"
    reply = (
        "The two sides will share resources and technologies , and carry out cooperation "
        f"{label_of(upstream, 'Share')}."
    )
    # Another name of the same sentence is no shorter form of what the reply said.
    upstream.queue(reply, yes("China"))
    other = httpx.post(base + "/v1/ask", json={"question": question}, timeout=30).json()
    assert other["answer"] == "resources and technologies , And carry out cooperation [1]."
    upstream.queue(reply, yes("resources"))
    shorter = httpx.post(base + "/v1/ask", json={"question": question}, timeout=30).json()
    assert shorter["answer"] == "resources [1]."
    # A phrase in other words is shown as the words of its sentence it matches.
    upstream.queue(reply, yes("resources and technology"))
    matched = httpx.post(base + "/v1/ask", json={"question": question}, timeout=30).json()
    assert matched["answer"] == "resources and technologies [1]."
    # Nor does it cut a list the answer gives.
    use = label_of(upstream, "full use")
    listed = f"Renault will make full use of brand strategy 、 Content and channels {use}"
    upstream.queue(listed, yes("Content and channels"))
    whole = httpx.post(
        base + "/v1/ask", json={"question": "What will Renault make full use of?"}, timeout=30
    ).json()
    assert whole["answer"].startswith("brand strategy 、 Content and channels")
    assert "Share resources" in shorter["citations"][0]["text"]


def test_a_reply_already_phrase_sized_is_shown_without_asking_for_a_phrase(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server(support_judge=True)
    question = "What will the two sides share in their cooperation?"
    upstream.queue(f"resources and technologies {label_of(upstream, 'Share')}", yes("resources"))
    before = len(upstream.requests)
    body = httpx.post(base + "/v1/ask", json={"question": question}, timeout=30).json()
    assert body["answer"] == "resources and technologies [1]."
    # The judge was asked for its yes or no alone: one token, no phrase after it.
    assert len(upstream.requests) == before + 2 and upstream.requests[-1]["max_tokens"] == 1
