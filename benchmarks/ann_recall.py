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


if __name__ == "__main__":
    main()
