"""The first answer after a burst of writes, against answers on a settled index, same run.

    .venv/bin/python benchmarks/answer_after_writes.py [--writes 10]

Loads the embedded pipeline over the bundled article in a fresh index directory, answers
the development questions once to settle (baseline: their p50), then sends a burst of
``--writes`` concurrent one-sentence document adds through the service's write path and
asks the first question the moment the last write is acknowledged. It prints that
answer's latency and its ratio to the baseline, then the same after a burst of deletes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from index import Document
from service import Runtime, Settings, delete_document, load_runtime, upsert_documents

QUESTIONS = Path(__file__).resolve().parents[2] / "shared" / "eval" / "article_questions.json"


async def _ask_ms(runtime: Runtime, question: str) -> float:
    started = time.perf_counter()
    await runtime.answerer.ask(question)
    return (time.perf_counter() - started) * 1000


async def main_async(writes: int) -> None:
    """Measure and print."""
    questions = [q["q"] for q in json.loads(QUESTIONS.read_text())["questions"]]
    with tempfile.TemporaryDirectory() as out:
        runtime = await load_runtime(Settings(index_dir=Path(out)))
        try:
            settled = [await _ask_ms(runtime, q) for q in questions]
            baseline = statistics.median(settled)
            memos = [
                Document(f"memo-{n}", f"Memo {n}", f"Plant {n} opens in May, said the memo.")
                for n in range(writes)
            ]
            started = time.perf_counter()
            await asyncio.gather(*(upsert_documents(runtime, [m]) for m in memos))
            acked = (time.perf_counter() - started) * 1000
            after_adds = await _ask_ms(runtime, questions[0])
            await asyncio.sleep(5)  # let any re-warm finish before the next burst
            started = time.perf_counter()
            await asyncio.gather(*(delete_document(runtime, m.doc_id) for m in memos))
            deleted = (time.perf_counter() - started) * 1000
            after_deletes = await _ask_ms(runtime, questions[0])
        finally:
            await runtime.aclose()
    print(f"settled answers: p50 {baseline:.0f} ms over {len(settled)} questions")
    print(f"{writes} concurrent adds acknowledged in {acked:.0f} ms; the next answer took "
          f"{after_adds:.0f} ms ({after_adds / baseline:.2f}x the settled p50)")  # fmt: skip
    print(f"{writes} concurrent deletes acknowledged in {deleted:.0f} ms; the next answer took "
          f"{after_deletes:.0f} ms ({after_deletes / baseline:.2f}x the settled p50)")  # fmt: skip


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=10)
    asyncio.run(main_async(parser.parse_args().writes))


if __name__ == "__main__":
    main()
