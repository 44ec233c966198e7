r"""Scoped dense search: recall against an exact search of the scope, speed against none.

    .venv/bin/python benchmarks/filtered_search.py [--synthetic N] [--out FILE]

Two corpora:
- the SQuAD corpus with the article (``../shared/eval/squad``), as ``citeqa eval`` indexes it
  (4,750 sentences, a flat index), asked its 448 questions;
- ``--synthetic N`` clustered unit vectors of 384 dimensions (default 200,000) in one
  compressed segment (IVF lists of PQ codes, re-ranked), asked 200 of its own rows, perturbed.

Scopes are random sentence masks at 1 %, 10 % and 50 % (a filter's documents are some of a
corpus's sentences; which ones does not change the search). Recall@10 is the share of the
exact top 10 of the scope (every vector in scope scored) that the scoped search returns;
p50 is per query, the filtered search against the unfiltered one over the same store. A scope's
mask is read-only, as a collection's is, so the store keeps what it built for the scope at its
first search (the "first search" column: that search, building included).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from index import FaissStore, SentenceTransformerEmbedder
from service import eval_settings, open_index

ROOT = Path(__file__).resolve().parents[1]
SQUAD = ROOT.parent / "shared" / "eval" / "squad"
SHARES = (0.01, 0.1, 0.5)


def _measure(store: Any, vectors: np.ndarray, queries: np.ndarray) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    rows = []
    plain, plain_hits = [], 0
    for q in queries:
        t = time.perf_counter()
        _, found = store.search(q[None, :], 10)
        plain.append((time.perf_counter() - t) * 1000)
        exact = set(np.argsort(-(vectors @ q))[:10].tolist())
        plain_hits += len(exact & {int(i) for i in found[0] if i >= 0})
    rows.append({
        "share": 1.0,
        "scope_sentences": len(vectors),
        "recall_at_10": round(plain_hits / (10 * len(queries)), 4),
        "filtered_p50_ms": round(statistics.median(plain), 3),
        "first_ms": round(plain[0], 1),
        "unfiltered_p50_ms": round(statistics.median(plain), 3),
        "ratio": 1.0,
    })  # fmt: skip
    for share in SHARES:
        allowed = rng.random(len(vectors)) < share
        allowed.flags.writeable = False  # as a collection's mask is: the store keeps its view
        scope = np.nonzero(allowed)[0]
        hits, times = 0, []
        for q in queries:
            t = time.perf_counter()
            _, found = store.search(q[None, :], 10, allowed)
            times.append((time.perf_counter() - t) * 1000)
            exact = set(scope[np.argsort(-(vectors[scope] @ q))[:10]].tolist())
            hits += len(exact & {int(i) for i in found[0] if i >= 0})
        rows.append({
            "share": share,
            "scope_sentences": int(scope.size),
            "recall_at_10": round(hits / (10 * len(queries)), 4),
            "filtered_p50_ms": round(statistics.median(times), 3),
            "first_ms": round(times[0], 1),
            "unfiltered_p50_ms": round(statistics.median(plain), 3),
            "ratio": round(statistics.median(times) / statistics.median(plain), 2),
        })  # fmt: skip
    return rows


def squad() -> list[dict[str, Any]]:
    """The SQuAD corpus with the article, asked its questions."""
    paths = [SQUAD / "docs.jsonl", ROOT / "corpus" / "renault-geely-mou.txt"]
    settings = eval_settings(paths)
    embedder = SentenceTransformerEmbedder()
    index = open_index(settings, embedder)
    questions = [json.loads(line)["question"] for line in (SQUAD / "questions.jsonl").open()]
    queries = embedder.encode(questions)
    vectors = np.asarray(index.vectors[list(range(len(index.sentences)))])
    return _measure(index.store, vectors, queries)


def synthetic(n: int) -> list[dict[str, Any]]:
    """``n`` random unit vectors in one compressed segment, asked perturbed rows of its own."""
    rng = np.random.default_rng(1)
    # Clustered, as sentence embeddings are (topics), not uniform on the sphere, where every
    # pair is about as near as any other and no index can tell neighbours apart.
    centres = rng.standard_normal((n // 200, 384)).astype(np.float32)
    vectors = centres[rng.integers(0, len(centres), n)]
    vectors += 0.6 * rng.standard_normal((n, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = FaissStore.from_vectors(vectors, compress_threshold=min(n, 100_000))
    queries = vectors[:200] + 0.3 * rng.standard_normal((200, 384)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return _measure(store, vectors, queries)


def _share(share: float) -> str:
    return "none" if share == 1.0 else f"{share:.0%}"


def _table(title: str, rows: list[dict[str, Any]]) -> str:
    lines = [
        f"### {title}",
        "",
        "| scope | sentences in scope | recall@10 | filtered p50 | first search | unfiltered p50 "
        "| ratio |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(
            f"| {_share(r['share'])} | {r['scope_sentences']:,} | {r['recall_at_10']:.3f} "
            f"| {r['filtered_p50_ms']} ms | {r['first_ms']} ms | {r['unfiltered_p50_ms']} ms "
            f"| {r['ratio']}x |"
            for r in rows
        ),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=int, default=200_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    text = "\n\n".join([
        _table("SQuAD corpus and the article (flat)", squad()),
        _table(f"{args.synthetic:,} clustered vectors, compressed (IVF-PQ, re-ranked)",
               synthetic(args.synthetic)),
    ])  # fmt: skip
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
