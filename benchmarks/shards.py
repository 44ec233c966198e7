"""Search over shards against one index of the same documents, in one run.

    .venv/bin/python benchmarks/shards.py [--questions 60] [--out FILE.md]

The 24 SQuAD articles and the bundled article (about 5,500 sentences, MiniLM) are indexed
once whole and once split by ``shard_of`` over 1, 2 and 4 shard directories. For each
layout the same questions are searched (query encoding, both rounds, the fetch, ranking,
the hits: what ``POST /v1/search`` does) through in-process shards and through Ray Serve
deployment handles on a local Ray. Printed: p50 and p95 per layout, the ratio of each p50 to
one index's, whether the ranked sentences equal one index's, and the resident memory of each
Ray Serve shard replica.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from index import Document, SentenceTransformerEmbedder, build_index, read_documents, save_snapshot
from service import Settings, bundled_corpus, start_shards
from service.answering import Answerer, ShardClient, ShardReader, Shards, shard_of

SQUAD = Path(__file__).resolve().parents[2] / "shared" / "eval" / "squad"


def _search(answerer: Answerer, question: str) -> list[str]:
    reading = answerer.reading_of(question)
    candidates = reading.retriever.retrieve(question).candidates
    return [h.sentence_id for h in reading.retriever.sentence_hits(candidates, 10)]


def _timed(run: Callable[[str], list[str]], questions: list[str]) -> tuple[list[float], dict]:
    run(questions[0])  # warm
    times, ranked = [], {}
    for q in questions:
        started = time.perf_counter()
        ranked[q] = run(q)
        times.append((time.perf_counter() - started) * 1000)
    return times, ranked


def _replica_rss_mib() -> list[float]:
    """Resident memory of each Ray Serve shard replica process (Linux /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if b"ServeReplica:citeqa-shard" not in (proc / "cmdline").read_bytes():
                continue
            status = (proc / "status").read_text()
        except OSError:
            continue
        kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
        found.append(kib / 1024)
    return found


def main() -> None:
    """Index, split, search each layout, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=60)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    docs: list[Document] = read_documents([SQUAD / "docs.jsonl", bundled_corpus()])
    questions = [
        json.loads(line)["question"]
        for line in (SQUAD / "questions.jsonl").read_text().splitlines()[: args.questions]
    ]
    embedder = SentenceTransformerEmbedder()
    settings = Settings(whole_corpus_chars=0)
    started = time.perf_counter()
    whole = build_index(docs, embedder)
    print(f"indexed {len(whole.sentences)} sentences in {time.perf_counter() - started:.0f} s")
    one = Answerer.over(whole, embedder, None, settings)
    base_times, base_ranked = _timed(lambda q: _search(one, q), questions)
    base = statistics.median(base_times)
    rows = [("one index", base_times, True, "")]
    workdir = Path(tempfile.mkdtemp(prefix="citeqa-shards-"))
    for n in (1, 2, 4):
        parts: list[list[Document]] = [[] for _ in range(n)]
        for doc in docs:
            parts[shard_of(doc.doc_id, n)].append(doc)
        vectors = {s.sentence_id: whole.vectors[i] for i, s in enumerate(whole.sentences)}
        indexes = [build_index(p, embedder, reuse=vectors) for p in parts]
        dirs = []
        for i, index in enumerate(indexes):
            directory = workdir / f"{n}-{i}"
            save_snapshot(index, directory)
            dirs.append(directory)
        layouts: list[tuple[str, list[ShardClient]]] = [
            (
                f"{n} shard(s), in process",
                [ShardReader(ix, f"s{i}") for i, ix in enumerate(indexes)],
            ),
            (f"{n} shard(s), Ray Serve", list(start_shards(dirs, timeout_s=30))),
        ]
        for label, clients in layouts:
            answerer = Answerer.over(build_index([], embedder), embedder, None, settings)
            answerer.shards = Shards(clients, embedder, settings)
            times, ranked = _timed(lambda q, a=answerer: _search(a, q), questions)
            same = ranked == base_ranked
            memory = ""
            if "Ray" in label:
                rss = _replica_rss_mib()
                memory = ", ".join(f"{r:.0f}" for r in sorted(rss))
                from ray import serve

                for client in clients:
                    serve.delete(client.name)
            answerer.shards.close()
            rows.append((label, times, same, memory))
    lines = [
        f"Search over shards: {len(whole.sentences)} sentences, {len(questions)} SQuAD "
        "questions, MiniLM on 2 cores, all shards on this one machine.",
        "",
        "| layout | p50 ms | p95 ms | p50 / one index | same top 10 as one index "
        "| RSS per Ray shard replica, MiB |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, times, same, memory in rows:
        p50 = statistics.median(times)
        p95 = statistics.quantiles(times, n=20)[-1]
        lines.append(f"| {label} | {p50:.1f} | {p95:.1f} | {p50 / base:.2f}x | "
                     f"{'yes' if same else 'no'} | {memory} |")  # fmt: skip
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
