r"""Answer time with llama.cpp's n-gram speculative decoding, against none in the same run.

    .venv/bin/python benchmarks/speculative.py [--out FILE]

The answers copy words from the source sentences, so drafts looked up in the prompt
("prompt lookup" speculation: llama.cpp's ``ngram-simple`` and ``ngram-map-k``) might be
accepted often enough to pay for their verification. For each setting the embedded server
is started afresh, its prompt cache warmed with the article, and the development questions
answered once with the service's answer prompt and request (greedy, logprobs on). The
figure is the total answer time over a baseline run without speculation, and whether
every reply equals the baseline's.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import httpx

from index import split_sentences
from service import Settings, bundled_corpus
from service.answering import render_answer_prompt
from service.llm import EmbeddedServer, assemble_model

QUESTIONS = Path(__file__).resolve().parents[2] / "shared" / "eval" / "article_questions.json"
# (llama.cpp speculative type, n-gram looked up, tokens drafted); None: no speculation.
SETTINGS: list[tuple[str, int, int] | None] = [
    None,
    ("NGRAM_SIMPLE", 3, 8),
    ("NGRAM_SIMPLE", 2, 4),
    ("NGRAM_MAP_K", 3, 8),
]


class _Speculating(EmbeddedServer):
    """The embedded server with one n-gram speculation setting."""

    def __init__(self, model_path: Path, setting: tuple[str, int, int]) -> None:
        super().__init__(model_path)
        self.setting = setting

    def params(self) -> Any:
        import xllamacpp

        params = super().params()
        kind, n, m = self.setting
        spec = params.speculative
        spec.types = [getattr(xllamacpp.common_speculative_type, f"COMMON_SPECULATIVE_TYPE_{kind}")]
        for ngram in (spec.ngram_simple, spec.ngram_map_k):
            ngram.size_n, ngram.size_m = n, m
        spec.draft.n_max = m
        return params


def _run(server: EmbeddedServer, sentences: list[str], questions: list[str]) -> dict[str, Any]:
    """Answer every question once, after warming the cache; the times and the replies."""
    client = httpx.Client(base_url=server.start(), timeout=300)
    settings = Settings()

    def ask(question: str, max_tokens: int) -> str:
        payload = {
            "messages": render_answer_prompt(sentences, question),
            "max_tokens": max_tokens,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": 5,
        }
        response = client.post("chat/completions", json=payload)
        response.raise_for_status()
        return str(response.json()["choices"][0]["message"]["content"])

    try:
        ask("warm-up", 1)
        seconds, replies = [], []
        for question in questions:
            started = time.perf_counter()
            replies.append(ask(question, settings.llm_max_tokens))
            seconds.append(time.perf_counter() - started)
    finally:
        client.close()
        server.stop()
    return {"total_s": round(sum(seconds), 2), "replies": replies}


def main() -> None:
    """Run every setting and print each against the baseline without speculation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    questions = [q["q"] for q in json.loads(QUESTIONS.read_text())["questions"]]
    sentences = [s.text for s in split_sentences("article", bundled_corpus().read_text("utf-8"))]
    model = assemble_model(Settings().model_cache_dir)
    lines = [
        f"Questions: {len(questions)} development questions, answered once per setting.",
        "",
        "| speculation | total answer time | over none | replies equal to none's |",
        "| --- | --- | --- | --- |",
    ]
    baseline: dict[str, Any] | None = None
    for setting in SETTINGS:
        server = EmbeddedServer(model) if setting is None else _Speculating(model, setting)
        run = _run(server, sentences, questions)
        baseline = baseline or run
        name = "none" if setting is None else "{}, n={}, m={}".format(*setting)
        same = sum(a == b for a, b in zip(run["replies"], baseline["replies"], strict=True))
        ratio = run["total_s"] / baseline["total_s"]
        lines.append(f"| {name} | {run['total_s']} s | {ratio:.2f}x | {same}/{len(questions)} |")
        print(lines[-1], flush=True)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
