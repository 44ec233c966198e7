"""Prompt templates, read from the ``prompts`` package."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from string import Template

__all__ = ["render_answer_prompt", "render_condense_prompt", "render_judge_prompt"]

_SYSTEM = "--- system ---"
_USER = "--- user ---"


@lru_cache
def _template(name: str) -> tuple[Template, Template]:
    """The system and user templates of ``prompts/NAME.md``; a file may hold only the user's."""
    raw = resources.files("prompts").joinpath(f"{name}.md").read_text(encoding="utf-8")
    head, user = re.sub(r"<!--.*?-->", "", raw, flags=re.DOTALL).split(_USER, 1)
    system = head.split(_SYSTEM, 1)[1] if _SYSTEM in head else ""
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


def render_judge_prompt(
    answer_prompt: Sequence[dict[str, str]], labels: Sequence[int]
) -> list[dict[str, str]]:
    """The answer prompt, its question followed by: do sentences ``labels`` answer it.

    ``labels`` are the ``[Sn]`` numbers of the sources asked about; the reply is yes or
    no. The prompt up to the question is the answer prompt's, so the LLM server reuses its
    cache of it and processes only the few new tokens.
    """
    _, user = _template("judge")
    named = [f"[S{n}]" for n in labels]
    listed = " and ".join([", ".join(named[:-1]), named[-1]] if len(named) > 1 else named)
    *before, question = answer_prompt
    asked = f"{question['content']}\n{user.substitute(labels=listed)}"
    return [*before, {"role": "user", "content": asked}]
