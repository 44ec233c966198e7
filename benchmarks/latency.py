"""Latency and memory of the pipeline, each against a baseline measured in the same run.

    .venv/bin/python benchmarks/latency.py [--rounds N] [--json OUT]

Figures: cold start to ready (embedder, index, LLM load and prompt-cache warm-up), the first
answer after ready, p50/p95 of search, ask in extractive mode and ask with the LLM over the
development questions, and peak RSS. Baselines: a bare query ``encode`` for search, and a bare
chat completion with the identical prompt for the LLM ask, so each ratio is the pipeline's own
overhead over the work it cannot avoid.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import time
from pathlib import Path
from typing import Any

from service import Settings, load_runtime
from service.answering import AnswerDelta, render_answer_prompt

QUESTIONS = Path(__file__).resolve().parents[2] / "shared" / "eval" / "article_questions.json"
FALLBACK = [
    "Which platform underpins the Korean models?",
    "What will the two sides share in their cooperation?",
    "How many employees does Renault group have worldwide?",
    "What is Geely's annual revenue?",
]


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 1), "p95": round(p95, 1)}


async def main(rounds: int) -> dict[str, Any]:
    """Measure every figure once, with its baseline."""
    questions = (
        [q["q"] for q in json.loads(QUESTIONS.read_text())["questions"]]
        if QUESTIONS.exists()
        else FALLBACK
    )
    started = time.perf_counter()
    runtime = await load_runtime(Settings())
    cold_start = (time.perf_counter() - started) * 1000
    answerer = runtime.answerer
    assert runtime.llm is not None

    t = time.perf_counter()
    await answerer.ask(questions[0])
    first_answer = (time.perf_counter() - t) * 1000

    encode, search, extractive, ask, bare_llm = [], [], [], [], []
    # Separate passes: the answerer reuses the encode of the question it saw last, which a
    # real stream of different questions does not get.
    for _ in range(rounds):
        for q in questions:
            t = time.perf_counter()
            answerer.embedder.encode([q])
            encode.append((time.perf_counter() - t) * 1000)
        for q in questions:
            t = time.perf_counter()
            candidates = answerer.retriever.retrieve(q).candidates
            answerer.retriever.sentence_hits(candidates, 5)
            answerer.retriever.passages(candidates, 5)
            search.append((time.perf_counter() - t) * 1000)
        for q in questions:
            t = time.perf_counter()
            await answerer.ask(q, mode="extractive")
            extractive.append((time.perf_counter() - t) * 1000)
    # Two separate passes, so that each call finds only the shared prefix cached,
    # never its own whole prompt.
    sentences = [s.text for s in answerer.index.sentences]
    for q in questions:
        t = time.perf_counter()
        await runtime.llm.complete(
            render_answer_prompt(sentences, q), max_tokens=answerer.settings.llm_max_tokens
        )
        bare_llm.append((time.perf_counter() - t) * 1000)
    for q in questions:
        t = time.perf_counter()
        await answerer.ask(q)
        ask.append((time.perf_counter() - t) * 1000)
    # Streaming: time to the first shown text and to the end, against the time to the
    # first token of a bare upstream stream with the identical prompt.
    first_text, stream_total, bare_first = [], [], []
    for q in questions:
        t = time.perf_counter()
        async for _ in runtime.llm.stream(render_answer_prompt(sentences, q), max_tokens=1):
            bare_first.append((time.perf_counter() - t) * 1000)
            break
    for q in questions:
        t = time.perf_counter()
        first: float | None = None
        async for event in answerer.ask_events(q):
            if first is None and isinstance(event, AnswerDelta):
                first = (time.perf_counter() - t) * 1000
        stream_total.append((time.perf_counter() - t) * 1000)
        if first is not None:
            first_text.append(first)
    await runtime.aclose()

    figures = {
        "cold_start_to_ready_ms": round(cold_start, 1),
        "load_breakdown_ms": runtime.timings_ms,
        "first_answer_after_ready_ms": round(first_answer, 1),
        "search_ms": _ms(search),
        "baseline_encode_ms": _ms(encode),
        "search_over_encode_p50": round(statistics.median(search) / statistics.median(encode), 2),
        "ask_extractive_ms": _ms(extractive),
        "ask_llm_ms": _ms(ask),
        "baseline_bare_llm_ms": _ms(bare_llm),
        "ask_llm_over_bare_llm_p50": round(statistics.median(ask) / statistics.median(bare_llm), 2),
        "stream_first_text_ms": _ms(first_text),
        "stream_total_ms": _ms(stream_total),
        "baseline_bare_first_token_ms": _ms(bare_first),
        "first_text_over_bare_first_token_p50": round(
            statistics.median(first_text) / statistics.median(bare_first), 2
        ),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "questions": len(questions),
    }
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of search/extractive")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = asyncio.run(main(args.rounds))
    for key, value in result.items():
        print(f"{key:>30}: {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
