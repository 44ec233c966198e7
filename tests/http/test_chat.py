"""Chat turns: frontends' background tasks, history limits and follow-up rewriting."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest

from service import Settings
from service.answering import history, is_frontend_task, looks_dependent, resolve_positions
from service.http import ChatMessage
from tests.conftest import CMA, QueuedUpstream, chat, cma_reply, label_of

Server = Callable[..., str]
KOREA = "Which platform underpins the Korean models?"

OPEN_WEBUI_TITLE = """### Task:
Generate a concise title summarizing the chat history.
### Output:
JSON format: { "title": "your concise title here" }
### Chat History:
<chat_history>
USER: Which platform underpins the Korean models?
ASSISTANT: The Korean models use the Lingke energy saving platform CMA [1].
</chat_history>"""
OPEN_WEBUI_FOLLOW_UPS = OPEN_WEBUI_TITLE.replace(
    "Generate a concise title summarizing the chat history.",
    "Predict 3-5 useful messages this user might naturally send next.",
)
LIBRECHAT_TITLE = (
    "Provide a concise, 5-word-or-less title for the conversation, using title case "
    "conventions. Only return the title itself.\n\nConversation:\nUser: Which platform?\nAI: CMA"
)


def _messages(*turns: tuple[str, str]) -> list[ChatMessage]:
    return [ChatMessage(role=role, content=text) for role, text in turns]  # type: ignore[arg-type]


@pytest.mark.parametrize("prompt", [OPEN_WEBUI_TITLE, OPEN_WEBUI_FOLLOW_UPS, LIBRECHAT_TITLE])
def test_frontend_tasks_get_the_plain_llm_without_retrieval_or_citations(
    live_server: Server, upstream: QueuedUpstream, prompt: str
) -> None:
    base = live_server(task_max_tokens=40)
    upstream.queue('{ "title": "Korean Platform" }')
    response = chat(base, [{"role": "user", "content": prompt}])
    assert response.status_code == 200
    message = response.json()["choices"][0]["message"]
    assert message == {
        "role": "assistant",
        "content": '{ "title": "Korean Platform" }',
        "refusal": None,
        "citations": [],
        "degraded": False,
    }
    sent = upstream.requests[-1]
    assert sent["max_tokens"] == 40
    assert sent["messages"][-1]["content"] == prompt  # the prompt as it came, no sources added


def test_an_oversized_task_prompt_is_clipped_not_refused(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server(task_prompt_chars=1000)
    history_dump = "USER: " + "tell me more about the platform " * 5000
    prompt = OPEN_WEBUI_TITLE.replace("USER: Which platform", history_dump)
    upstream.queue('{ "title": "Platforms" }')
    response = chat(base, [{"role": "user", "content": prompt}], stream=True)
    assert response.status_code == 200
    assert '{ \\"title\\": \\"Platforms\\" }' in response.text
    assert response.text.rstrip().endswith("data: [DONE]")
    sent = upstream.requests[-1]["messages"][-1]["content"]
    assert len(sent) <= 1000 and sent.startswith("### Task:") and sent.endswith("</chat_history>")


def test_a_failing_task_answers_empty_rather_than_an_error(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server()
    upstream.queue(*[httpx.ConnectError("down")] * 3)
    response = chat(base, [{"role": "user", "content": LIBRECHAT_TITLE}])
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == ""


def test_a_user_question_is_not_mistaken_for_a_task() -> None:
    assert not is_frontend_task(_messages(("user", KOREA)))
    assert not is_frontend_task(
        _messages(("system", "### Task:\nRespond to the user query using the context"),
                  ("user", KOREA))
    )  # fmt: skip
    assert is_frontend_task(_messages(("user", KOREA), ("user", LIBRECHAT_TITLE)))


def test_the_question_limit_applies_to_the_last_message_only(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server()
    upstream.queue("Which platform underpins the Korean models?", cma_reply(upstream))
    long_turn = "An earlier, very long message. " * 140_000  # about 4 MB
    response = chat(
        base,
        [
            {"role": "user", "content": long_turn},
            {"role": "assistant", "content": "The documents do not answer this question."},
            {"role": "user", "content": "Which platform do they use there?"},
        ],
    )
    assert response.status_code == 200
    condense = upstream.requests[-2]["messages"][-1]["content"]
    assert len(condense) < 6000  # the history was cut to its own limit
    too_long = chat(base, [{"role": "user", "content": "why " * 600}])
    assert too_long.status_code == 400
    error = too_long.json()["error"]
    assert error["type"] == "invalid_request_error" and "2000" in error["message"]


def test_history_keeps_the_newest_turns_within_its_limits() -> None:
    settings = Settings(chat_history_turns=2, chat_history_chars=60)
    messages = _messages(
        ("user", "First question about Renault?"),
        ("assistant", 'Renault group [1].\n\nSources:\n[1] "Renault group ..." (doc [0, 5))'),
        ("system", "Be brief."),
        ("user", "Second question about Geely?"),
        ("assistant", "Geely Holding Group [1] and Renault [2]."),
        ("user", "and its employees?"),
    )
    assert history(messages, settings) == [
        ("user", "Second question about Geely?"),
        ("assistant", "Geely Holding Group and Renault."),
    ]
    tight = Settings(chat_history_turns=6, chat_history_chars=40)
    kept = history(messages, tight)
    assert sum(len(text) for _, text in kept) <= 40
    assert kept[-1] == ("assistant", "Geely Holding Group and Renault.")


@pytest.mark.parametrize(
    ("question", "dependent"),
    [
        ("How many employees does it have?", True),
        ("and in Korea?", True),
        ("How long has Renault Samsung been developing in the second one?", True),
        ("Which platform will those models be based on?", True),
        ("Why?", True),
        ("Which platform underpins the Korean models?", False),
        ("How many employees does Renault group have worldwide?", False),
    ],
)
def test_follow_ups_are_told_from_standalone_questions(question: str, dependent: bool) -> None:
    assert looks_dependent(question) is dependent


def test_a_standalone_last_message_is_not_rewritten(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server()
    upstream.queue(cma_reply(upstream))
    before = len(upstream.requests)
    response = chat(
        base,
        [
            {"role": "user", "content": "Who signed the memorandum?"},
            {"role": "assistant", "content": "Renault group and Geely Holding Group [1]."},
            {"role": "user", "content": KOREA},
        ],
    )
    assert len(upstream.requests) == before + 1  # the answer only, no rewrite
    assert upstream.requests[-1]["messages"][-1]["content"] == f"Question: {KOREA}"
    assert CMA in response.json()["choices"][0]["message"]["citations"][0]["text"]


def test_a_follow_up_is_rewritten_from_the_turns_without_their_sources(
    live_server: Server, upstream: QueuedUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="service.answering.conversation")
    base = live_server()
    rewritten = "How many employees does Renault group have?"
    employees = label_of(upstream, "employees")
    upstream.queue(
        f'Rewritten: "{rewritten}"', f"Renault group has 18 10000 employees {employees}."
    )
    response = chat(
        base,
        [
            {"role": "user", "content": "Which carmaker signed a memorandum with Geely?"},
            {"role": "assistant",
             "content": 'Renault group [1].\n\nSources:\n[1] "We have learned..." (doc [0, 9))'},
            {"role": "user", "content": "How many employees does it have?"},
        ],
    )  # fmt: skip
    condense, answer = upstream.requests[-2:]
    prompt = condense["messages"][-1]["content"]
    assert "Assistant: Renault group." in prompt and "Sources" not in prompt
    assert answer["messages"][-1]["content"] == f"Question: {rewritten}"
    body = response.json()["choices"][0]["message"]
    assert "18 10000" in body["content"] and "employees" in body["citations"][0]["text"]
    # The rewrite is logged, so that a follow-up answered about the wrong "it" can be traced.
    assert f"'How many employees does it have?' rewritten as '{rewritten}'" in caplog.text


@pytest.mark.parametrize(
    ("question", "earlier", "expected"),
    [
        ("How long has it been there, in the second one?",
         "The key markets are China and South Korea.",
         "How long has it been there, in South Korea?"),
        ("What about the first one?", "It has brands Renault (Renault)、 Dacia (Dacia) and Alpine.",
         "What about Renault?"),
        ("Which is the latter?", "It is allied with Nissan and Mitsubishi.",
         "Which is Mitsubishi?"),
        ("Is the fifth one new?", "It sells in China and Korea.", "Is the fifth one new?"),
        ("Which came first?", "China and Korea.", "Which came first?"),
    ],
)  # fmt: skip
def test_positions_in_a_list_are_resolved_from_the_latest_turn(
    question: str, earlier: str, expected: str
) -> None:
    turns = [("user", "Old question about Spain and France?"), ("assistant", earlier)]
    assert resolve_positions(question, turns) == expected


def test_the_second_one_is_resolved_without_asking_the_llm(
    live_server: Server, upstream: QueuedUpstream
) -> None:
    base = live_server()
    korea = label_of(upstream, "20 Years")
    upstream.queue(f"Renault Samsung has 20 Years of successful development experience {korea}.")
    response = chat(
        base,
        [
            {"role": "user", "content": "Which markets are key for the cooperation?"},
            {"role": "assistant", "content": "China and South Korea [1]."},
            {"role": "user", "content": "How long has Renault Samsung been in the second one?"},
        ],
    )
    asked = upstream.requests[-1]["messages"][-1]["content"]
    assert asked == "Question: How long has Renault Samsung been in South Korea?"
    assert "20" in response.json()["choices"][0]["message"]["content"]


def test_an_abstention_is_left_out_of_the_history() -> None:
    messages = _messages(
        ("user", "Which group has five brands?"),
        ("assistant", "The documents do not answer this question."),
        ("user", "What are they?"),
    )
    assert history(messages, Settings()) == [("user", "Which group has five brands?")]
