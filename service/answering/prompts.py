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
]

_SYSTEM = "--- system ---"
_USER = "--- user ---"


@lru_cache
def _template(name: str) -> tuple[Template, Template]:
    raw = resources.files("prompts").joinpath(f"{name}.md").read_text(encoding="utf-8")
    body = raw.split(_SYSTEM, 1)[1]
    system, user = body.split(_USER, 1)
    return Template(system.strip()), Template(user.strip())


def render_answer_prompt(sentences: list[str], question: str) -> list[dict[str, str]]:
    """Chat messages for one question: system (instructions, sources), then the question."""
    system, user = _template("answer")
    numbered = "\n".join(f"[S{i}] {' '.join(text.split())}" for i, text in enumerate(sentences, 1))
    return [
        {"role": "system", "content": system.substitute(sentences=numbered)},
        {"role": "user", "content": user.substitute(question=question)},
    ]


def render_condense_prompt(
    history: Sequence[tuple[str, str]], question: str
) -> list[dict[str, str]]:
    """Chat messages asking the LLM to make a follow-up question self-contained."""
    system, user = _template("condense")
    lines = "\n".join(f"{role.capitalize()}: {' '.join(text.split())}" for role, text in history)
    return [
        {"role": "system", "content": system.substitute()},
        {"role": "user", "content": user.substitute(history=lines, question=question)},
    ]


def render_judge_prompt(sentences: list[str], question: str) -> list[dict[str, str]]:
    """Chat messages asking whether ``sentences`` state the answer to ``question`` (yes/no)."""
    system, user = _template("judge")
    text = "\n".join(" ".join(t.split()) for t in sentences)
    return [
        {"role": "system", "content": system.substitute()},
        {"role": "user", "content": user.substitute(sentences=text, question=question)},
    ]


def render_screen_prompt(kind: Literal["sentence", "question"], text: str) -> list[dict[str, str]]:
    """Chat messages asking whether a document sentence or a question gives orders (yes/no)."""
    system, user = _template(f"screen_{kind}")
    return [
        {"role": "system", "content": system.substitute()},
        {"role": "user", "content": user.substitute(text=" ".join(text.split()))},
    ]


def render_translate_prompt(text: str, language: str) -> list[dict[str, str]]:
    """Chat messages asking for ``text`` (a question) in ``language`` (a language's name)."""
    system, user = _template("translate")
    return [
        {"role": "system", "content": system.substitute(language=language)},
        {"role": "user", "content": user.substitute(text=" ".join(text.split()))},
    ]


def render_render_prompt(lines: Sequence[str], language: str) -> list[dict[str, str]]:
    """Chat messages asking for an answer's quotes, numbered lines, in ``language``."""
    system, user = _template("render")
    numbered = "\n".join(f"{n}. {' '.join(line.split())}" for n, line in enumerate(lines, 1))
    return [
        {"role": "system", "content": system.substitute(language=language)},
        {"role": "user", "content": user.substitute(lines=numbered)},
    ]
