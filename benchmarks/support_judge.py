r"""Measure a yes/no judge, "do these sentences answer the question?", as an abstention gate.

    .venv/bin/citeqa eval ../shared/eval/squad/questions.jsonl \
        --corpus ../shared/eval/squad/docs.jsonl --limit 200 --json squad.json
    .venv/bin/python benchmarks/support_judge.py squad.json \
        --corpus ../shared/eval/squad/docs.jsonl --out judged.json

For each row of the eval run, the question's top three retrieved sentences go to the LLM with
one question: does this text state the answer? (``prompts/judge.md``.) This is how the judge
was first measured, before the answer; the service now asks it after the reply, about the
sentences the answer cites, and ``benchmarks/judge_gate.py`` chooses its thresholds. The
reply is one token; P(yes) comes from its top logprobs. The rows are written back with
``answerability`` set to P(yes), so that ``benchmarks/answerability_curve.py judged.json``
draws the curve of this judge as a gate.
It also prints the LLM time the extra call costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from service import eval_settings, load_runtime
from service.answering import Retriever, p_yes, render_judge_prompt


async def main_async(args: argparse.Namespace) -> None:
    """Judge every row of the run and write it back with P(yes) as its answerability."""
    settings = eval_settings(list(args.corpus))
    runtime = await load_runtime(settings)
    assert runtime.llm is not None
    retriever = Retriever(runtime.answerer.index, runtime.answerer.embedder, settings)
    data = json.loads(args.run.read_text())
    took = []
    try:
        for row in data["rows"]:
            found = retriever.retrieve(row["question"]).candidates[:3]
            sentences = [runtime.answerer.index.sentences[c.index].text for c in found]
            messages = render_judge_prompt(sentences, row["question"])
            start = time.perf_counter()
            top: tuple[tuple[str, float], ...] = ()
            async for token in runtime.llm.stream(messages, max_tokens=1):
                top = token.top
                break
            took.append(time.perf_counter() - start)
            probability = p_yes(top)
            row["answerability"] = 0.5 if probability is None else probability
    finally:
        await runtime.aclose()
    args.out.write_text(json.dumps(data, indent=2))
    print(f"judge call p50 {statistics.median(took):.2f} s, max {max(took):.2f} s")


def main() -> None:
    """Parse the arguments and run the judge."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--corpus", type=Path, action="append", required=True)
    parser.add_argument("--out", type=Path, required=True)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
