"""Recall of the HNSW index against exact search, on real sentence and question vectors.

    .venv/bin/python benchmarks/ann_recall.py [--copies N]

Uses the SQuAD slice: its sentence vectors (tiled with small noise ``N`` times, to reach the
sizes where the service switches to HNSW) and its questions as queries. Prints recall@10 of
HNSW against the exact flat index, and the query time of each.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from index import (
    FaissStore,
    SentenceTransformerEmbedder,
    corpus_checksum,
    load_or_build,
    read_documents,
)
from service._eval import read_questions

SQUAD = Path(__file__).resolve().parents[2] / "shared" / "eval" / "squad"


def main() -> None:
    """Build both indexes over the same vectors and compare their top 10."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=5)
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

    exact = FaissStore.from_vectors(vectors, hnsw_threshold=len(vectors) + 1)
    started = time.perf_counter()
    approx = FaissStore.from_vectors(vectors, hnsw_threshold=0)
    build_s = time.perf_counter() - started
    timings = {}
    results = {}
    for name, store in (("flat", exact), ("hnsw", approx)):
        started = time.perf_counter()
        _, ids = store.search(queries, 10)
        timings[name] = (time.perf_counter() - started) * 1000 / len(queries)
        results[name] = ids
    recall = np.mean(
        [len(set(t) & set(f)) / 10 for t, f in zip(results["flat"], results["hnsw"], strict=True)]
    )
    print(f"{'vectors':>22}: {len(vectors)}")
    print(f"{'queries':>22}: {len(queries)}")
    print(f"{'hnsw build s':>22}: {build_s:.1f}")
    print(f"{'hnsw recall@10':>22}: {recall:.4f}")
    print(f"{'flat ms/query':>22}: {timings['flat']:.3f}")
    print(f"{'hnsw ms/query':>22}: {timings['hnsw']:.3f}")
    print(f"{'hnsw / flat time':>22}: {timings['hnsw'] / timings['flat']:.2f}")


if __name__ == "__main__":
    main()
