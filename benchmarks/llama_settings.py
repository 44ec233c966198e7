r"""Prompt processing and generation speed of llama.cpp settings, against the defaults in one run.

    .venv/bin/python benchmarks/llama_settings.py [--prompts N] [--out FILE]

On a corpus larger than the prompt, each answer's best sentences reach the LLM uncached, so
an answer's time is mostly prompt processing. For each setting the embedded server is
started afresh, and the same prompts are sent: the service's answer prompt over 8
consecutive sentences of a SQuAD article (as many as a large corpus's prompt holds), each
prompt different, so that only the shared system prompt is cached. The figures are
llama.cpp's own timings (``timings`` in each reply): prompt and generated tokens per
second, and the wall time of the request; each ratio is over the defaults' in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from index import split_spans
from service import Settings
from service.answering import render_answer_prompt
from service.llm import EmbeddedServer, assemble_model

SQUAD = Path(__file__).resolve().parents[2] / "shared" / "eval" / "squad"
_SENTENCES = 8  # as many as Settings.context_sentences puts in a large corpus's prompt


def _flash(on: bool) -> Callable[[Any], None]:
    def apply(params: Any) -> None:
        import xllamacpp

        kind = "LLAMA_FLASH_ATTN_TYPE_ENABLED" if on else "LLAMA_FLASH_ATTN_TYPE_DISABLED"
        params.flash_attn_type = getattr(xllamacpp.llama_flash_attn_type, kind)

    return apply


def _kv(kind: str) -> Callable[[Any], None]:
    def apply(params: Any) -> None:
        import xllamacpp

        t = getattr(xllamacpp.ggml_type, f"GGML_TYPE_{kind}")
        params.cache_type_k = params.cache_type_v = t

    return apply


def _batch(n_batch: int, n_ubatch: int) -> Callable[[Any], None]:
    def apply(params: Any) -> None:
        params.n_batch, params.n_ubatch = n_batch, n_ubatch

    return apply


def _threads(n: int, n_batch: int) -> Callable[[Any], None]:
    def apply(params: Any) -> None:
        params.cpuparams.n_threads, params.cpuparams_batch.n_threads = n, n_batch

    return apply


SETTINGS: dict[str, Callable[[Any], None] | None] = {
    "defaults (flash auto, f16 KV, batch 2048/512, 2 threads)": None,
    "flash attention on": _flash(True),
    "flash attention off": _flash(False),
    "KV cache q8_0 (flash on)": lambda p: (_flash(True)(p), _kv("Q8_0")(p)),
    "ubatch 128": _batch(2048, 128),
    "ubatch 1024 (batch 1024)": _batch(1024, 1024),
    "1 thread to generate, 2 for prompts": _threads(1, 2),
}


class _Configured(EmbeddedServer):
    def __init__(self, model_path: Path, apply: Callable[[Any], None] | None) -> None:
        super().__init__(model_path)
        self.apply = apply

    def params(self) -> Any:
        params = super().params()
        if self.apply is not None:
            self.apply(params)
        return params


def _prompts(n: int) -> list[list[dict[str, str]]]:
    """``n`` answer prompts over 8 consecutive sentences of a SQuAD article each."""
    docs = [json.loads(line) for line in (SQUAD / "docs.jsonl").read_text().splitlines()]
    questions = [json.loads(line) for line in (SQUAD / "questions.jsonl").read_text().splitlines()]
    prompts = []
    for k in range(n):
        doc = docs[k % len(docs)]
        spans = split_spans(doc["text"])
        start = (k // len(docs)) * _SENTENCES
        window = [doc["text"][s:e] for s, e in spans[start : start + _SENTENCES]]
        prompts.append(render_answer_prompt(window, questions[k * 7 % len(questions)]["question"]))
    return prompts


def _run(server: EmbeddedServer, prompts: list[list[dict[str, str]]]) -> dict[str, Any]:
    base = server.start()
    prompt_tps, gen_tps, wall, prompt_n = [], [], [], []
    try:
        with httpx.Client(base_url=base, timeout=300) as client:
            # Warm: the system prompt is cached, as it is in service.
            client.post(
                "/chat/completions",
                json={"messages": prompts[0], "max_tokens": 1, "temperature": 0},
            )
            for messages in prompts[1:]:
                t = time.perf_counter()
                body = client.post(
                    "/chat/completions",
                    json={"messages": messages, "max_tokens": 32, "temperature": 0},
                ).json()
                wall.append(time.perf_counter() - t)
                timings = body["timings"]
                prompt_tps.append(timings["prompt_per_second"])
                gen_tps.append(timings["predicted_per_second"])
                prompt_n.append(timings["prompt_n"])
    finally:
        server.stop()
    return {
        "prompt_tokens_p50": statistics.median(prompt_n),
        "prompt_tps": round(statistics.median(prompt_tps), 1),
        "gen_tps": round(statistics.median(gen_tps), 1),
        "wall_s": round(statistics.median(wall), 2),
    }


def main(n: int) -> list[dict[str, Any]]:
    """Each setting's figures, and its ratios over the defaults measured first."""
    model = assemble_model(Settings().model_cache_dir)
    prompts = _prompts(n + 1)
    rows = []
    for name, apply in SETTINGS.items():
        figures = _run(_Configured(model, apply), prompts)
        rows.append({"setting": name, **figures})
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]
    for row in rows:
        row["prompt_x"] = round(row["prompt_tps"] / base["prompt_tps"], 2)
        row["wall_x"] = round(row["wall_s"] / base["wall_s"], 2)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=6)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = main(args.prompts)
    lines = [
        "| setting | prompt tokens | prompt tok/s | over defaults | gen tok/s | request s |",
        "| --- | --- | --- | --- | --- | --- |",
        *(
            f"| {r['setting']} | {r['prompt_tokens_p50']} | {r['prompt_tps']} | {r['prompt_x']}x"
            f" | {r['gen_tps']} | {r['wall_s']} |"
            for r in result
        ),
    ]
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
