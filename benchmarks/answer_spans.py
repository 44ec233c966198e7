"""How the shown span is chosen, apart from retrieval: SQuAD questions asked of their gold sentence.

    .venv/bin/python benchmarks/answer_spans.py [--prompt prompts/answer.md] [--offset 0]
        [--limit 40] [--json OUT]

Each answerable question of ``../shared/eval/squad`` is asked with its gold sentence(s) as the
only sources, through the answer prompt given (default: the one the service uses; pass an older
prompt file to measure an older design on the same questions). Printed: SQuAD's F1 and exact
match (its own normalisation, markers removed) of the model's raw reply, which is the model's
own limit; of the quote of the reply (``quote.align`` against the sentence it labelled); and
of what the service shows, the shortest phrase the support judge gives after its yes
(``judge.supports``, ``phrase.phrase_of``), or that quote when the phrase does not pass.
Also: the share of replies that copy their sentence word for word, and the time of the reply
and of the judge's call with its phrase.
Write-up: ``benchmarks/results/answer-spans.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from string import Template
from typing import Any

from service import Settings, load_runtime, shown_words, squad_scores
from service.answering import align, claims_of, phrase_of, supports

SQUAD = Path(__file__).resolve().parents[2] / "shared" / "eval" / "squad" / "questions.jsonl"
PROMPT = Path(__file__).resolve().parents[1] / "prompts" / "answer.md"


def _messages(prompt: str, sentences: list[str], question: str) -> list[dict[str, str]]:
    body = prompt.split("--- system ---", 1)[1]
    system, user = body.split("--- user ---", 1)
    numbered = "\n".join(f"[S{i}] {' '.join(s.split())}" for i, s in enumerate(sentences, 1))
    return [
        {"role": "system", "content": Template(system.strip()).substitute(sentences=numbered)},
        {"role": "user", "content": Template(user.strip()).substitute(question=question)},
    ]


async def main(prompt_path: Path, offset: int, limit: int) -> dict[str, Any]:
    """Ask each question of its gold sentences and score the raw reply and the shown quote."""
    prompt = prompt_path.read_text(encoding="utf-8")
    rows = [json.loads(line) for line in SQUAD.read_text().splitlines() if line.strip()]
    answerable = [r for r in rows if not r["is_impossible"] and r["gold_sentences"]]
    chosen = answerable[offset : offset + limit]
    runtime = await load_runtime(Settings(), warm=False)
    assert runtime.llm is not None
    results = []
    for r in chosen:
        sentences = r["gold_sentences"]
        started = time.perf_counter()
        reply = await runtime.llm.complete(
            _messages(prompt, sentences, r["question"]), max_tokens=160
        )
        elapsed = (time.perf_counter() - started) * 1000
        claims = claims_of(reply, list(range(len(sentences))))
        raw = " ".join(c.text for c in claims)
        shown, copied = "", False
        for claim in claims[:1]:
            for k in sorted(claim.hints) or range(len(sentences)):
                quote = align(claim.text, sentences[k], r["question"])
                if quote is not None:
                    shown, copied = quote.text, quote.copied
                    break
        raw_f1, raw_em = squad_scores(shown_words(raw), r["answers"])
        f1, em = squad_scores(shown_words(shown), r["answers"])
        # The service's design: the shortest phrase the judge gives after its yes.
        timings: dict[str, float] = {}
        deadline = time.monotonic() + 30
        judged = await supports(runtime.llm, sentences, r["question"], deadline, timings,
                                "phrase", phrase=True)  # fmt: skip
        phrase = phrase_of(judged.phrase, sentences, r["question"]) if judged else None
        phrased = phrase.quote.text if phrase is not None else shown
        phrase_f1, phrase_em = (
            squad_scores(shown_words(phrased), r["answers"]) if phrased else (0.0, False)
        )
        results.append({"id": r["id"], "question": r["question"], "answers": r["answers"],
                        "reply": reply, "shown": shown, "copied": copied, "raw_f1": raw_f1,
                        "raw_em": raw_em, "f1": f1, "em": em, "ms": round(elapsed, 1),
                        "phrased": phrased, "phrase_f1": phrase_f1, "phrase_em": phrase_em,
                        "phrase_ms": timings.get("phrase", 0.0)})  # fmt: skip
    await runtime.aclose()
    n = len(results)
    return {
        "prompt": str(prompt_path),
        "questions": n,
        "raw_f1": round(sum(x["raw_f1"] for x in results) / n, 3),
        "raw_em": round(sum(x["raw_em"] for x in results) / n, 3),
        "shown_f1": round(sum(x["f1"] for x in results) / n, 3),
        "shown_em": round(sum(x["em"] for x in results) / n, 3),
        "shown_none": sum(not x["shown"] for x in results),
        "copied": round(sum(x["copied"] for x in results) / n, 3),
        "shown_words_p50": statistics.median(len(x["shown"].split()) for x in results),
        "reply_ms_p50": round(statistics.median(x["ms"] for x in results), 1),
        "phrase_f1": round(sum(x["phrase_f1"] for x in results) / n, 3),
        "phrase_em": round(sum(x["phrase_em"] for x in results) / n, 3),
        "phrase_ms_p50": round(statistics.median(x["phrase_ms"] for x in results), 1),
        "rows": results,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", type=Path, default=PROMPT)
    parser.add_argument("--offset", type=int, default=0, help="first answerable question")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = asyncio.run(main(args.prompt, args.offset, args.limit))
    for key, value in result.items():
        if key != "rows":
            print(f"{key:>16}: {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
