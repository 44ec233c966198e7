"""Search latency while a stream of writes runs, against idle search in the same run.

    .venv/bin/python benchmarks/search_during_writes.py [--copies 1 5] [--seconds 30] \
        [--write-rates 2 0]

The corpus is the 24 SQuAD articles copied N times; its vectors are stand-ins of the real
model's shape (embedding 23,665 sentences would take minutes and changes nothing here),
while queries and every written sentence are embedded by the real model, as in service.
Searches run the service's own search step (retrieve, sentence hits, passages) in worker
threads, one after another over the SQuAD questions; writes go through the service's write
path (batching, durable snapshot, background merges), a one-sentence document added, then
deleted, over and over: ``--write-rates`` writes a second, or back to back for 0. It prints
search p50/p95 idle and during the writes, their ratio, and the writes' acknowledgement
latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import anyio.to_thread
from write_cost import SQUAD_DOCS, FixedEmbedder  # beside this script

from index import Document, SentenceTransformerEmbedder, build_index, read_documents, save_snapshot
from service import Runtime, Settings, delete_document, upsert_documents
from service.answering import Answerer

QUESTIONS = SQUAD_DOCS.parent / "questions.jsonl"


def _p(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


async def _searches(runtime: Runtime, questions: list[str], seconds: float) -> list[float]:
    def once(question: str) -> float:
        started = time.perf_counter()
        retriever = runtime.answerer.retriever
        candidates = retriever.retrieve(question).candidates
        retriever.sentence_hits(candidates, 5)
        retriever.passages(candidates, 5)
        return (time.perf_counter() - started) * 1000

    took: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        took.append(await anyio.to_thread.run_sync(once, questions[len(took) % len(questions)]))
    return took


async def _writes(runtime: Runtime, stop: asyncio.Event, rate: float) -> list[float]:
    took: list[float] = []
    n = 0
    while not stop.is_set():
        n += 1
        memo = Document(f"memo-{n}", f"Memo {n}", f"Plant number {n} opens in May.")
        for write in (upsert_documents(runtime, [memo]), delete_document(runtime, memo.doc_id)):
            started = time.perf_counter()
            await write
            took.append((time.perf_counter() - started) * 1000)
            if rate > 0:
                await asyncio.sleep(max(0.0, 1 / rate - took[-1] / 1000))
    return took


async def run(
    copies: int, seconds: float, rate: float, embedder: SentenceTransformerEmbedder
) -> dict[str, object]:
    """Idle search, then search during writes, over one corpus size."""
    base = read_documents([SQUAD_DOCS])
    docs = [Document(f"{d.doc_id}-{c}", d.title, d.text) for c in range(copies) for d in base]
    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text().splitlines()]
    stand_in = FixedEmbedder()
    stand_in.model_id = embedder.model_id  # the same model as far as the index can tell
    with tempfile.TemporaryDirectory() as out:
        settings = Settings(index_dir=Path(out))
        index = build_index(docs, stand_in)
        save_snapshot(index, settings.index_dir)
        runtime = Runtime(answerer=Answerer.over(index, embedder, None, settings))
        idle = await _searches(runtime, questions, seconds)
        stop = asyncio.Event()
        writer = asyncio.create_task(_writes(runtime, stop, rate))
        busy = await _searches(runtime, questions, seconds)
        stop.set()
        writes = await writer
        if runtime.merging is not None:
            await runtime.merging
        segments = len(runtime.answerer.index.segments)
    return {
        "sentences": len(index.sentences),
        "writes/s asked": rate or "back to back",
        "searches idle": len(idle),
        "idle p50 ms": round(statistics.median(idle), 1),
        "idle p95 ms": round(_p(idle, 95), 1),
        "searches during writes": len(busy),
        "during writes p50 ms": round(statistics.median(busy), 1),
        "during writes p95 ms": round(_p(busy, 95), 1),
        "p95 ratio": round(_p(busy, 95) / _p(idle, 95), 2),
        "writes": len(writes),
        "write p50 ms": round(statistics.median(writes), 1),
        "write p95 ms": round(_p(writes, 95), 1),
        "segments at the end": segments,
    }


def main() -> None:
    """Print the figures for each corpus size as a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--write-rates", type=float, nargs="+", default=[2.0, 0.0])
    args = parser.parse_args()
    embedder = SentenceTransformerEmbedder()
    rows = [
        asyncio.run(run(copies, args.seconds, rate, embedder))
        for copies in args.copies
        for rate in args.write_rates
    ]
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("| " + " | ".join("---" for _ in keys) + " |")
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
