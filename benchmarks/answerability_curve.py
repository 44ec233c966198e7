r"""Pick CITEQA_MIN_ANSWERABILITY from an eval run, on one half of it, and check it on the other.

    .venv/bin/citeqa eval ../shared/eval/squad/questions.jsonl \
        --corpus ../shared/eval/squad/docs.jsonl --limit 200 --json squad.json
    .venv/bin/python benchmarks/answerability_curve.py squad.json [--budget 0.10] [--out FILE]

Each row records the LLM's own answerability (1 - P(its reply starts "NOT FOUND")). For a
threshold t, a row that was answered becomes an abstention when its answerability is below t.
The rows split by position into a tuning half (even) and a check half (odd). On the tuning
half, the threshold with the most unanswerables abstained whose false abstention stays
within the budget is chosen; when none stays within it, the threshold stays off (0). Both
halves are reported.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

THRESHOLDS = [0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.92, 0.94, 0.96, 0.98]


def figures(rows: list[dict[str, Any]], t: float) -> dict[str, float]:
    """Answer accuracy, unanswerables abstained and false abstention at threshold ``t``."""

    def abstains(r: dict[str, Any]) -> bool:
        p = r.get("answerability")
        return bool(r["abstained"]) or (p is not None and p < t)

    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    right = sum(1 for r in answerable if r["correct"] and not abstains(r))
    return {
        "accuracy": right / max(len(answerable), 1),
        "abstained": sum(map(abstains, unanswerable)) / max(len(unanswerable), 1),
        "false_abstention": sum(map(abstains, answerable)) / max(len(answerable), 1),
    }


def main() -> None:
    """Print the curve on both halves and the chosen threshold, as Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the --json output of citeqa eval")
    parser.add_argument("--budget", type=float, default=0.10, help="false-abstention budget")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = json.loads(args.run.read_text())["rows"]
    tune, check = rows[0::2], rows[1::2]
    lines = [
        f"Rows: {len(rows)} ({len(tune)} tuning, {len(check)} check) from {args.run.name}.",
        "",
        "| min_answerability | tune: accuracy | tune: unanswerables abstained | tune: false "
        "abstention | check: accuracy | check: unanswerables abstained | check: false abstention |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    curve = [(t, figures(tune, t), figures(check, t)) for t in THRESHOLDS]
    for t, a, b in curve:
        lines.append(
            f"| {t:.2f} | {a['accuracy']:.3f} | {a['abstained']:.3f} | {a['false_abstention']:.3f}"
            f" | {b['accuracy']:.3f} | {b['abstained']:.3f} | {b['false_abstention']:.3f} |"
        )
    within = [(a["abstained"], t) for t, a, _ in curve if a["false_abstention"] <= args.budget]
    _, chosen = max(within) if within else (0.0, 0.0)
    rule = "most abstained within the budget" if within else "no threshold meets the budget: off"
    lines += ["", f"Chosen on the tuning half ({rule}, budget {args.budget:.2f}): {chosen}"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
