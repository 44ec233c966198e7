"""Latency and memory of the pipeline, each against a baseline measured in the same run.

    .venv/bin/python benchmarks/latency.py [--rounds N] [--json OUT]
    .venv/bin/python benchmarks/latency.py --corpus ../shared/eval/squad/docs.jsonl \
        --corpus corpus/renault-geely-mou.txt \
        --questions ../shared/eval/squad/questions.jsonl [--offset N] [--limit N]

Figures: cold start to ready (embedder, index, LLM load and prompt-cache warm-up), the first
answer after ready, p50/p95 of search, ask in extractive mode and ask with the LLM over the
development questions, and peak RSS. Baselines: a bare query ``encode`` for search, and a bare
chat completion with the identical prompt for the LLM ask, so each ratio is the pipeline's own
overhead over the work it cannot avoid. With the judge on, a verified answer cannot cost less
than that completion plus the judge's one-word reply about the best sentence: the floor, timed
bare as well.

With ``--corpus``, the questions are asked of an index of those documents (built once, under
``var/eval-<checksum>`` as ``citeqa eval`` builds it), which is the large-corpus case: the
prompt holds each question's best sentences, uncached. The bare completion is sent that same
prompt. Prompt and generation tokens per second come from llama.cpp's own counters
(``/metrics`` of the embedded server), over the asks alone and over the bare completions alone.
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

import httpx

from service import Settings, eval_settings, load_runtime, read_questions
from service.answering import AnswerDelta, render_judge_prompt

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


_COUNTERS = (
    "llamacpp:prompt_tokens_total",
    "llamacpp:prompt_seconds_total",
    "llamacpp:tokens_predicted_total",
    "llamacpp:tokens_predicted_seconds_total",
)


class _Counters:
    """llama.cpp's token counters, read before and after a pass: its own tokens per second."""

    def __init__(self, base_url: str | None) -> None:
        self.url = None if base_url is None else base_url.removesuffix("/v1") + "/metrics"

    def read(self) -> dict[str, float]:
        if self.url is None:
            return {}
        text = httpx.get(self.url, timeout=10).text
        values = {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in _COUNTERS:
                values[name] = float(value)
        return values

    @staticmethod
    def rates(before: dict[str, float], after: dict[str, float]) -> dict[str, float | None]:
        if not before or not after:
            return {"prompt_tokens_per_s": None, "generated_tokens_per_s": None}

        def rate(tokens: str, seconds: str) -> float | None:
            spent = after[seconds] - before[seconds]
            return round((after[tokens] - before[tokens]) / spent, 1) if spent > 0 else None

        return {
            "prompt_tokens": after[_COUNTERS[0]] - before[_COUNTERS[0]],
            "prompt_tokens_per_s": rate(_COUNTERS[0], _COUNTERS[1]),
            "generated_tokens": after[_COUNTERS[2]] - before[_COUNTERS[2]],
            "generated_tokens_per_s": rate(_COUNTERS[2], _COUNTERS[3]),
        }


def _settings(corpus: list[Path]) -> Settings:
    """The served settings, or an index of ``corpus`` of its own, as ``citeqa eval`` keeps one."""
    # No prompt kept in host memory: the bare completion and the pipeline are each sent the
    # same prompt, and the second would otherwise find it cached whole.
    base = Settings(llm_cache_ram_mib=0)
    return eval_settings(corpus, base) if corpus else base


def _questions(path: Path | None, offset: int, limit: int | None) -> list[str]:
    if path is not None:
        return [q.question for q in read_questions(path)][
            offset : None if limit is None else offset + limit
        ]
    if QUESTIONS.exists():
        return [q["q"] for q in json.loads(QUESTIONS.read_text())["questions"]]
    return FALLBACK


async def main(
    rounds: int, corpus: list[Path], questions_path: Path | None, offset: int, limit: int | None
) -> dict[str, Any]:
    """Measure every figure once, with its baseline."""
    questions = _questions(questions_path, offset, limit)
    started = time.perf_counter()
    runtime = await load_runtime(_settings(corpus))
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
    counters = _Counters(
        runtime.embedded.base_url if runtime.embedded else answerer.settings.llm_base_url
    )
    prompts = [answerer.answer_prompt(q) for q in questions]
    before = counters.read()
    for messages in prompts:
        t = time.perf_counter()
        await runtime.llm.complete(messages, max_tokens=answerer.settings.llm_max_tokens)
        bare_llm.append((time.perf_counter() - t) * 1000)
    between = counters.read()
    for q in questions:
        t = time.perf_counter()
        await answerer.ask(q)
        ask.append((time.perf_counter() - t) * 1000)
    after = counters.read()
    # The judge's own floor: its one-word answer about the question's best sentence, the
    # least a verified answer adds to the bare completion.
    bare_judge = []
    for q in questions:
        best = answerer.retriever.retrieve(q).candidates[0].index
        messages = render_judge_prompt([answerer.index.sentences[best].text], q)
        t = time.perf_counter()
        await runtime.llm.complete(messages, max_tokens=1)
        bare_judge.append((time.perf_counter() - t) * 1000)
    floor = [answer + judge for answer, judge in zip(bare_llm, bare_judge, strict=True)]
    # Streaming: time to the first shown text and to the end, against the time to the
    # first token of a bare upstream stream with the identical prompt.
    first_text, stream_total, bare_first = [], [], []
    for messages in prompts:
        t = time.perf_counter()
        async for _ in runtime.llm.stream(messages, max_tokens=1):
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
        "baseline_bare_judge_ms": _ms(bare_judge),
        "floor_bare_llm_plus_judge_ms": _ms(floor),
        "floor_over_bare_llm_p50": round(statistics.median(floor) / statistics.median(bare_llm), 2),
        "ask_llm_over_floor_p50": round(statistics.median(ask) / statistics.median(floor), 2),
        "stream_first_text_ms": _ms(first_text),
        "stream_total_ms": _ms(stream_total),
        "baseline_bare_first_token_ms": _ms(bare_first),
        "first_text_over_bare_llm_p50": round(
            statistics.median(first_text) / statistics.median(bare_llm), 2
        ),
        "first_text_over_bare_first_token_p50": round(
            statistics.median(first_text) / statistics.median(bare_first), 2
        ),
        "llama_bare": _Counters.rates(before, between),
        "llama_ask": _Counters.rates(between, after),
        "corpus_sentences": len(answerer.index.sentences),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "questions": len(questions),
    }
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of search/extractive")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--corpus", type=Path, action="append", default=[], help="documents to index and ask"
    )
    parser.add_argument("--questions", type=Path, default=None, help="SQuAD JSONL or article JSON")
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    result = asyncio.run(main(args.rounds, args.corpus, args.questions, args.offset, args.limit))
    for key, value in result.items():
        print(f"{key:>30}: {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
