"""The SQuAD eval on one index built three ways: in one segment, in ten, and merged back.

    .venv/bin/python benchmarks/segments_eval.py [--mode extractive] [--limit N]

The 24 SQuAD articles are indexed once in a single segment; then as ten writes of a few
articles each, with two articles replaced and one deleted and added back on the way (ten
segments with tombstones); then those ten segments merged into one. Each index answers the
448 questions through ``citeqa eval``'s own code. It prints the figures of each and whether
every row (answer, citations, abstention) is the same. Extractive mode by default: it
exercises retrieval and grounding without the LLM's sampling, in a minute instead of hours.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from write_cost import SQUAD_DOCS  # beside this script

from index import (
    CorpusIndex,
    Document,
    SentenceTransformerEmbedder,
    Vectors,
    build_index,
    merged_segment,
    read_documents,
    update_index,
    with_merged,
)
from service import AnswerMode, Settings, evaluate, read_questions
from service.answering import Answerer

KEYS = ("answer_accuracy", "gold_cited_rate", "recall@1", "recall@5", "recall@10",
        "abstention_recall", "false_abstention_rate", "verbatim_citation_rate")  # fmt: skip


class RememberingEmbedder:
    """The real model, embedding each text once across the three builds."""

    def __init__(self) -> None:
        self._model = SentenceTransformerEmbedder()
        self.model_id, self.dim = self._model.model_id, self._model.dim
        self._seen: dict[str, Vectors] = {}

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> Vectors:
        """Vectors for ``texts``, from the cache where it has them."""
        new = [t for t in dict.fromkeys(texts) if t not in self._seen]
        if new:
            self._seen.update(zip(new, self._model.encode(new), strict=True))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._seen[t] for t in texts]).astype(np.float32)


def _ten_segments(docs: list[Document], embedder: RememberingEmbedder) -> CorpusIndex:
    index = build_index([], embedder)
    step = -(-len(docs) // 10)
    for i in range(0, len(docs), step):
        index = update_index(index, embedder, upserts=docs[i : i + step])
        if i == step:  # a replace and a delete-and-add-back, so that tombstones are in play
            index = update_index(index, embedder, upserts=docs[:2], deletes=[docs[3].doc_id])
            index = update_index(index, embedder, upserts=[docs[3]])
    return index


def _merged(index: CorpusIndex) -> CorpusIndex:
    names = [s.name for s in index.segments]
    merged = with_merged(index, merged_segment(index, names), names)
    assert merged is not None
    return merged


async def main_async(args: argparse.Namespace) -> None:
    """Evaluate each build and compare."""
    docs = read_documents([SQUAD_DOCS])
    questions = read_questions(SQUAD_DOCS.parent / "questions.jsonl")[: args.limit]
    embedder = RememberingEmbedder()
    single = build_index(docs, embedder)
    ten = _ten_segments(docs, embedder)
    builds = {"one segment": single, "ten segments": ten, "ten, merged": _merged(ten)}
    mode: AnswerMode = args.mode
    results: dict[str, dict[str, Any]] = {}
    for name, index in builds.items():
        answerer = Answerer.over(index, embedder, None, Settings())
        results[name] = await evaluate(answerer, questions, mode)
    print(f"| index | segments | tombstones | {' | '.join(KEYS)} |")
    print("| --- " * (len(KEYS) + 3) + "|")
    for name, result in results.items():
        index = builds[name]
        figures = " | ".join(str(result["figures"][k]) for k in KEYS)
        print(f"| {name} | {len(index.segments)} | {index.tombstones} | {figures} |")
    same = {
        name: [_row(r) for r in result["rows"]] == [_row(r) for r in results["one segment"]["rows"]]
        for name, result in results.items()
    }
    print(f"\nrows identical to the one-segment index: {json.dumps(same)}")
    print(f"content_digest identical: {len({i.content_digest for i in builds.values()}) == 1}")


def _row(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["answer"], row["abstained"], row["gold_cited"], row["gold_rank"])


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["extractive", "llm"], default="extractive")
    parser.add_argument("--limit", type=int, default=None)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
