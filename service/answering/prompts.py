"""Prompt templates, read from the ``prompts`` package."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from string import Template
from typing import Literal

__all__ = [
    "render_answer_prompt",
    "render_condense_prompt",
    "render_judge_prompt",
    "render_render_prompt",
    "render_screen_prompt",
    "render_translate_prompt",
    "render_verdict_prompt",
]

_SYSTEM = "--- system ---"
_USER = "--- user ---"


@lru_cache
def _template(name: str) -> tuple[Template, Template]:
    raw = resources.files("prompts").joinpath(f"{name}.md").read_text(encoding="utf-8")
    body = raw.split(_SYSTEM, 1)[1]
    system, user = body.split(_USER, 1)
    return Template(system.strip()), Template(user.strip())


def _chat(name: str, system: dict[str, str], user: dict[str, str]) -> list[dict[str, str]]:
    """The system and user messages of prompt ``name``, its variables filled in."""
    system_template, user_template = _template(name)
    return [
        {"role": "system", "content": system_template.substitute(system)},
        {"role": "user", "content": user_template.substitute(user)},
    ]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render_answer_prompt(sentences: list[str], question: str) -> list[dict[str, str]]:
    """Chat messages for one question: system (instructions, sources), then the question."""
    numbered = "\n".join(f"[S{i}] {_one_line(text)}" for i, text in enumerate(sentences, 1))
    return _chat("answer", {"sentences": numbered}, {"question": question})


def render_condense_prompt(
    history: Sequence[tuple[str, str]], question: str
) -> list[dict[str, str]]:
    """Chat messages asking the LLM to make a follow-up question self-contained."""
    lines = "\n".join(f"{role.capitalize()}: {_one_line(text)}" for role, text in history)
    return _chat("condense", {}, {"history": lines, "question": question})


def render_judge_prompt(sentences: list[str], question: str) -> list[dict[str, str]]:
    """Chat messages asking whether ``sentences`` state the answer to ``question`` (yes/no)."""
    text = "\n".join(_one_line(t) for t in sentences)
    return _chat("judge", {}, {"sentences": text, "question": question})


def render_verdict_prompt(sentences: list[str], question: str) -> list[dict[str, str]]:
    """Chat messages asking whether ``sentences`` answer a yes/no question yes or no."""
    text = "\n".join(_one_line(t) for t in sentences)
    return _chat("verdict", {}, {"sentences": text, "question": question})


def render_screen_prompt(kind: Literal["sentence", "question"], text: str) -> list[dict[str, str]]:
    """Chat messages asking whether a document sentence or a question gives orders (yes/no)."""
    return _chat(f"screen_{kind}", {}, {"text": _one_line(text)})


def render_translate_prompt(text: str, language: str) -> list[dict[str, str]]:
    """Chat messages asking for ``text`` (a question) in ``language`` (a language's name)."""
    return _chat("translate", {"language": language}, {"text": _one_line(text)})


def render_render_prompt(lines: Sequence[str], language: str) -> list[dict[str, str]]:
    """Chat messages asking for an answer's quotes, numbered lines, in ``language``."""
    numbered = "\n".join(f"{n}. {_one_line(line)}" for n, line in enumerate(lines, 1))
    return _chat("render", {"language": language}, {"lines": numbered})
