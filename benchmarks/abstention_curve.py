"""Abstention trade-off on SQuAD: abstained unanswerables against wrongly abstained answerables.

    .venv/bin/python benchmarks/abstention_curve.py [--docs D] [--questions Q] [--out FILE]

The service abstains (before asking the LLM, and in extractive mode) when the best
sentence's evidence is under ``min_evidence`` or the cited sentences hold less than
``min_question_coverage`` of the question's IDF-weighted terms. This sweeps both
thresholds over the same retrieval, prints the curve, and names the pair that abstains
on the most unanswerables while keeping false abstention at or under the budget.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from index import SentenceTransformerEmbedder, corpus_checksum, load_or_build, read_documents
from service import Answerer, Settings, read_questions
from service.answering import coverage, terms

SQUAD = Path(__file__).resolve().parents[2] / "shared" / "eval" / "squad"


def main() -> None:
    """Sweep the thresholds and print the curve as a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=SQUAD / "docs.jsonl")
    parser.add_argument("--questions", type=Path, default=SQUAD / "questions.jsonl")
    parser.add_argument("--budget", type=float, default=0.10, help="false-abstention budget")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    docs = read_documents([args.docs])
    embedder = SentenceTransformerEmbedder()
    index_dir = Path("var") / f"eval-{corpus_checksum(docs)[:12]}"
    answerer = Answerer.over(load_or_build(index_dir, docs, embedder), embedder, None, Settings())
    rows = []
    for q in read_questions(args.questions):
        retriever = answerer.retriever
        best = retriever.retrieve(q.question).candidates[0]
        q_cov = coverage(terms(q.question), retriever.context_terms(best.index), retriever.idf)
        rows.append((q.answerable, best.evidence, q_cov))
    answerable = [r for r in rows if r[0]]
    unanswerable = [r for r in rows if not r[0]]

    lines = [
        "| min_evidence | min_question_coverage | unanswerables abstained | false abstention |",
        "| --- | --- | --- | --- |",
    ]
    best_pair: tuple[float, float, float, float] | None = None
    for e in [0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60]:
        for c in [0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]:

            def abstains(row: tuple[bool, float, float], e: float = e, c: float = c) -> bool:
                return row[1] < e or row[2] < c

            hit = sum(map(abstains, unanswerable)) / len(unanswerable)
            false = sum(map(abstains, answerable)) / len(answerable)
            lines.append(f"| {e:.2f} | {c:.1f} | {hit:.1%} | {false:.1%} |")
            if false <= args.budget and (best_pair is None or hit > best_pair[2]):
                best_pair = (e, c, hit, false)
    text = "\n".join(lines)
    if best_pair:
        e, c, hit, false = best_pair
        text += (
            f"\n\nBest within {args.budget:.0%} false abstention: min_evidence={e:.2f}, "
            f"min_question_coverage={c:.1f}: {hit:.1%} of unanswerables abstained, "
            f"{false:.1%} of answerables wrongly abstained "
            f"({len(unanswerable)} unanswerable, {len(answerable)} answerable)."
        )
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
