"""Recall of HNSW and of compressed codes against exact search, on real sentence vectors.

    .venv/bin/python benchmarks/ann_recall.py [--copies N]

Uses the SQuAD slice: its sentence vectors (tiled with small noise ``N`` times, to reach the
sizes where the service switches to HNSW) and its questions as queries. Prints, for HNSW and
for the compressed index (IVF lists of 48-byte PQ codes, shortlist re-ranked exactly from the
full vectors, which a segment keeps mapped from disk): recall@10 against the exact flat
index, the query time of each, and the bytes per sentence each index holds in memory.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import faiss
import numpy as np

from index import (
    FaissStore,
    SentenceTransformerEmbedder,
    corpus_checksum,
    load_or_build,
    read_documents,
)
from service import read_questions

SQUAD = Path(__file__).resolve().parents[2] / "shared" / "eval" / "squad"


def main() -> None:
    """Build both indexes over the same vectors and compare their top 10."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=5)
    parser.add_argument(
        "--shards",
        type=int,
        default=0,
        help="Instead: split the vectors over N shards, each its own compressed index, and "
        "merge each shard's top 10 (the fan-out of citeqa serve --shards).",
    )
    args = parser.parse_args()
    docs = read_documents([SQUAD / "docs.jsonl"])
    embedder = SentenceTransformerEmbedder()
    index = load_or_build(Path("var") / f"eval-{corpus_checksum(docs)[:12]}", docs, embedder)
    rng = np.random.default_rng(0)
    tiles = [index.vectors]
    for _ in range(args.copies - 1):
        noisy = index.vectors + 0.05 * rng.normal(size=index.vectors.shape).astype(np.float32)
        tiles.append(noisy / np.linalg.norm(noisy, axis=1, keepdims=True))
    vectors = np.ascontiguousarray(np.vstack(tiles), dtype=np.float32)
    queries = embedder.encode([q.question for q in read_questions(SQUAD / "questions.jsonl")])

    if args.shards:
        _sharded(vectors, queries, args.shards)
        return
    n = len(vectors) + 1
    exact = FaissStore.from_vectors(vectors, hnsw_threshold=n, compress_threshold=n)
    stores = {"flat": exact}
    builds = {}
    for name, options in (("hnsw", {"hnsw_threshold": 0}), ("ivfpq", {"compress_threshold": 0})):
        started = time.perf_counter()
        stores[name] = FaissStore.from_vectors(vectors, **options)
        builds[name] = time.perf_counter() - started
    print(f"vectors: {len(vectors)}, queries: {len(queries)}")
    print("| index | build s | recall@10 | ms/query | x flat time | bytes/sentence in memory |")
    print("| --- | --- | --- | --- | --- | --- |")
    truth: np.ndarray | None = None
    flat_ms = 1.0
    for name, store in stores.items():
        started = time.perf_counter()
        _, ids = store.search(queries, 10)
        ms = (time.perf_counter() - started) * 1000 / len(queries)
        if truth is None:
            truth, flat_ms = ids, ms
        recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, ids, strict=True)])
        size = faiss.serialize_index(store.index).nbytes / len(vectors)
        print(f"| {name} | {builds.get(name, 0.0):.1f} | {recall:.4f} | {ms:.3f} | "
              f"{ms / flat_ms:.2f} | {size:.0f} |")  # fmt: skip


def _sharded(vectors: np.ndarray, queries: np.ndarray, shards: int) -> None:
    """Recall@10 of the merged top 10 of ``shards`` compressed indexes against exact search."""
    n = len(vectors) + 1  # the reference is flat however many vectors there are
    exact = FaissStore.from_vectors(vectors, hnsw_threshold=n, compress_threshold=n)
    started = time.perf_counter()
    _, truth = exact.search(queries, 10)
    flat_ms = (time.perf_counter() - started) * 1000 / len(queries)
    rows = [np.arange(k, len(vectors), shards) for k in range(shards)]  # rows dealt round-robin
    parts, builds, sizes = [], [], []
    for taken in rows:
        started = time.perf_counter()
        part = FaissStore.from_vectors(np.ascontiguousarray(vectors[taken]), compress_threshold=0)
        builds.append(time.perf_counter() - started)
        sizes.append(faiss.serialize_index(part.index).nbytes / 2**20)
        parts.append(part)
    started = time.perf_counter()
    found = [part.search(queries, 10) for part in parts]
    ms = (time.perf_counter() - started) * 1000 / len(queries)
    scores = np.concatenate([f[0] for f in found], axis=1)
    ids = np.concatenate([taken[f[1]] for taken, f in zip(rows, found, strict=True)], axis=1)
    top = np.take_along_axis(ids, np.argsort(-scores, axis=1, kind="stable")[:, :10], 1)
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, top, strict=True)])
    print(f"vectors: {len(vectors)} over {shards} shards ({len(rows[0])} each), "
          f"queries: {len(queries)}")  # fmt: skip
    print(
        "| shards | vectors | recall@10 (merged top 10 vs exact) | build s per shard | "
        "ms/query (all shards, one after another) | exact ms/query | index MiB per shard |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {shards} | {len(vectors)} | {recall:.4f} | {np.mean(builds):.0f} | {ms:.2f} | "
          f"{flat_ms:.2f} | {np.mean(sizes):.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
