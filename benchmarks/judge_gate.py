r"""Choose CITEQA_SUPPORT_JUDGE_MIN and CITEQA_SECOND_OPINION_MIN from eval runs in record mode.

    export CITEQA_SUPPORT_JUDGE_MIN=0 CITEQA_SECOND_OPINION_MIN=0   # record mode
    .venv/bin/citeqa eval tune.jsonl --corpus ../shared/eval/squad/docs.jsonl --json tune.json
    .venv/bin/citeqa eval check.jsonl --corpus ../shared/eval/squad/docs.jsonl --json check.json
    .venv/bin/python benchmarks/judge_gate.py tune.json check.json [--budget 0.10] [--out FILE]

In record mode every LLM answer carries the judge's P(yes) (``support``) and nothing is
withheld or held back on its account: an answer that passed the checks was given (the judge
is in ``timings_ms.judge``), and a reply the checks held back was given from the sentence it
points at (``timings_ms.second_opinion``). Both gates are monotone, so one run gives every
pair of thresholds: a judged answer becomes an abstention when its support is below the
gate, a second opinion when its support is below the second-opinion threshold.

On the tuning run, the pair with the most right answers plus right abstentions (answer
accuracy + unanswerables abstained) whose false abstention stays within the budget less a
margin is chosen; when none does, the pair with the least false abstention. The margin
(0.03, about one standard error of a false-abstention rate near 0.10 over 70 answerable
questions) keeps the choice off the edge of the budget, where P(yes) falls off a cliff.
The check run, which nothing was chosen on, is reported at the same pair.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

GATES = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7]
OPINIONS = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.01]  # 1.01: never given


def _given(row: dict[str, Any], gate: float, opinion: float) -> bool:
    """Whether the row's answer is given at these thresholds."""
    if row["abstained"]:
        return False
    support, timings = row.get("support"), row["timings_ms"]
    if support is None:
        return True
    if "judge" in timings:
        return bool(support >= gate)
    if "second_opinion" in timings:
        return bool(support >= opinion)
    return True


def figures(rows: list[dict[str, Any]], gate: float, opinion: float) -> dict[str, float]:
    """Answer accuracy, gold cited, unanswerables abstained and false abstention."""
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    given = [r for r in answerable if _given(r, gate, opinion)]
    return {
        "accuracy": sum(r["correct"] for r in given) / max(len(answerable), 1),
        "gold": sum(r["gold_cited"] for r in given) / max(len(answerable), 1),
        "abstained": sum(not _given(r, gate, opinion) for r in unanswerable)
        / max(len(unanswerable), 1),
        "false_abstention": 1 - len(given) / max(len(answerable), 1),
    }


def auc(rows: list[dict[str, Any]], path: str) -> float | None:
    """ROC AUC of support between answerable and unanswerable rows on one path."""
    on = [r for r in rows if path in r["timings_ms"] and r.get("support") is not None]
    pos = [r["support"] for r in on if r["answerable"]]
    neg = [r["support"] for r in on if not r["answerable"]]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def _row(name: str, f: dict[str, float]) -> str:
    return (
        f"| {name} | {f['accuracy']:.3f} | {f['gold']:.3f} | {f['abstained']:.3f}"
        f" | {f['false_abstention']:.3f} |"
    )


def main() -> None:
    """Print the curve on the tuning run, the chosen pair, and the check run at it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tune", type=Path, help="the --json output of citeqa eval, record mode")
    parser.add_argument("check", type=Path, help="another run, on other questions")
    parser.add_argument("--budget", type=float, default=0.10, help="false-abstention budget")
    parser.add_argument("--margin", type=float, default=0.03, help="kept below the budget")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    tune = json.loads(args.tune.read_text())["rows"]
    check = json.loads(args.check.read_text())["rows"]
    header = [
        "| thresholds (gate, second opinion) | accuracy | gold cited | unanswerables abstained"
        " | false abstention |",
        "| --- | --- | --- | --- | --- |",
    ]
    curve = {(g, o): figures(tune, g, o) for g in GATES for o in OPINIONS}
    limit = args.budget - args.margin
    within = [k for k, f in curve.items() if f["false_abstention"] <= limit]
    if within:
        chosen = max(within, key=lambda k: curve[k]["accuracy"] + curve[k]["abstained"])
        rule = (
            f"most right answers plus right abstentions within {limit:.2f} false abstention,"
            f" the budget {args.budget:.2f} less the margin {args.margin:.2f}"
        )
    else:
        chosen = min(curve, key=lambda k: (curve[k]["false_abstention"], -curve[k]["abstained"]))
        rule = f"no pair stays within {limit:.2f} false abstention: the least of it"
    lines = [
        f"Tuning run: {args.tune.name}, {len(tune)} rows. Check run: {args.check.name}, "
        f"{len(check)} rows.",
        "",
    ]
    for name, rows in (("tuning", tune), ("check", check)):
        scores = {p: auc(rows, p) for p in ("judge", "second_opinion")}
        shown = ", ".join(
            f"{p} {a:.2f}" if a is not None else f"{p} n/a" for p, a in scores.items()
        )
        lines.append(f"ROC AUC of support, answerable against unanswerable, {name} run: {shown}.")
    lines += [
        "",
        "Tuning run, the second opinion at the chosen threshold, the gate swept:",
        "",
        *header,
    ]
    lines += [_row(f"{g:.2f}, {chosen[1]:.2f}", curve[(g, chosen[1])]) for g in GATES]
    lines += [
        "",
        "Tuning run, the gate at the chosen threshold, the second opinion swept "
        "(1.01: never given):",
        "",
        *header,
    ]
    lines += [_row(f"{chosen[0]:.2f}, {o:.2f}", curve[(chosen[0], o)]) for o in OPINIONS]
    lines += [
        "",
        f"Chosen on the tuning run ({rule}): gate {chosen[0]:.2f}, second opinion {chosen[1]:.2f}.",
        "",
        *header,
        _row("tuning, record mode (no gate, every second opinion given)", figures(tune, 0.0, 0.0)),
        _row("tuning, chosen", curve[chosen]),
        _row("check, record mode", figures(check, 0.0, 0.0)),
        _row("check, chosen", figures(check, *chosen)),
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
