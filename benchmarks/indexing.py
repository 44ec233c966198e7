"""Indexing throughput against the raw ``encode`` rate of the same model, in the same run.

    .venv/bin/python benchmarks/indexing.py [DOCS.jsonl ...]

Default corpus: the 24 SQuAD articles. Prints the time to index them (segment, chunk,
embed, FAISS, BM25, durable snapshot), sentences per second, the raw encode rate over
the same sentences, and the ratio of the two.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from index import SentenceTransformerEmbedder, build_index, read_documents, save_snapshot, segment

SQUAD_DOCS = Path(__file__).resolve().parents[2] / "shared" / "eval" / "squad" / "docs.jsonl"


def main() -> None:
    """Time a full index build and a bare encode of the same sentences."""
    paths = [Path(p) for p in sys.argv[1:]] or [SQUAD_DOCS]
    docs = read_documents(paths)
    embedder = SentenceTransformerEmbedder()
    embedder.encode(["warm-up"])
    texts = [s.text for d in docs for s in segment(d.doc_id, d.text)]

    started = time.perf_counter()
    embedder.encode(texts)
    encode_s = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        index = build_index(docs, embedder)
        save_snapshot(index, Path(out))
        index_s = time.perf_counter() - started

    n = len(texts)
    print(f"{'documents':>28}: {len(docs)}")
    print(f"{'sentences':>28}: {n}")
    print(f"{'index build + snapshot s':>28}: {index_s:.1f}")
    print(f"{'indexing sentences/s':>28}: {n / index_s:.0f}")
    print(f"{'baseline raw encode s':>28}: {encode_s:.1f}")
    print(f"{'baseline encode sentences/s':>28}: {n / encode_s:.0f}")
    print(f"{'indexing / encode rate':>28}: {encode_s / index_s:.2f}")


if __name__ == "__main__":
    main()
