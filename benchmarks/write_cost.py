"""What a one-sentence write costs, at 1x and Nx the SQuAD corpus, against a full rebuild.

    .venv/bin/python benchmarks/write_cost.py [--copies 1 4 5] [--rounds 3]

The corpus is the 24 SQuAD articles, copied N times under new doc_ids. Embedding is left
out on purpose (a stand-in embedder returns fixed random unit vectors of the real model's
384 dimensions, so FAISS, the vectors file and the snapshot have their real sizes): what
is timed is what a write costs beyond embedding its own new sentences.

For each size it prints the median of ``--rounds`` adds and deletes of a one-sentence
document, and of deletes of one of the corpus's own documents (a tombstone in the big
segment), split into the index update, the durable snapshot and the new answerer (its
per-corpus tables); and the baseline measured in the same run: the same add as a rebuild
of the whole index (every document split into sentences again, FAISS and BM25 built anew,
the whole snapshot written), which is what a write cost before segments.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from index import (
    CorpusIndex,
    Document,
    Vectors,
    build_index,
    read_documents,
    save_snapshot,
    update_index,
)
from service import Settings
from service.answering import Answerer

SQUAD_DOCS = Path(__file__).resolve().parents[2] / "shared" / "eval" / "squad" / "docs.jsonl"


class FixedEmbedder:
    """Deterministic random unit vectors: the real model's shape at no encoding cost."""

    model_id = "benchmark/fixed-384"
    dim = 384

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> Vectors:
        """One unit vector per text, seeded by its hash."""
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            rows.append(v / np.linalg.norm(v))
        return np.array(rows, dtype=np.float32).reshape(len(texts), self.dim)


def _timed_write(
    index: CorpusIndex, directory: Path, *, upserts: list[Document], deletes: list[str],
    rebuild: bool = False,
) -> tuple[CorpusIndex, dict[str, float]]:  # fmt: skip
    embedder = FixedEmbedder()
    started = time.perf_counter()
    if rebuild:  # the write path before segments: the whole index built anew
        kept = [d for d in index.documents.values() if d.doc_id not in set(deletes)]
        vectors = np.asarray(index.vectors)
        reuse = {s.sentence_id: vectors[i] for i, s in enumerate(index.sentences)}
        new = build_index([*kept, *upserts], embedder, reuse=reuse)
    else:
        new = update_index(index, embedder, upserts=upserts, deletes=deletes)
    updated = time.perf_counter()
    save_snapshot(new, directory)
    saved = time.perf_counter()
    Answerer.over(new, embedder, None, Settings())
    done = time.perf_counter()
    return new, {
        "update": updated - started,
        "snapshot": saved - updated,
        "answerer": done - saved,
        "total": done - started,
    }


def main() -> None:
    """Print the write costs as a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 4, 5])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    base = read_documents([SQUAD_DOCS])
    memo = Document(doc_id="memo", title="Memo", text="The plant opens in May.")
    print("| corpus | sentences | write | update s | snapshot s | answerer s | total s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for copies in args.copies:
        docs = [
            Document(doc_id=f"{d.doc_id}-{c}", title=d.title, text=d.text)
            for c in range(copies)
            for d in base
        ]
        with tempfile.TemporaryDirectory() as out:
            directory = Path(out)
            index = build_index(docs, FixedEmbedder())
            save_snapshot(index, directory)
            size = len(index.sentences)
            runs: dict[str, list[dict[str, float]]] = {
                "add": [], "delete": [], "delete, big segment": [], "add, rebuild": [],
            }  # fmt: skip
            for r in range(args.rounds):
                index, cost = _timed_write(index, directory, upserts=[memo], deletes=[])
                runs["add"].append(cost)
                index, cost = _timed_write(index, directory, upserts=[], deletes=["memo"])
                runs["delete"].append(cost)
                victim = docs[r].doc_id
                index, cost = _timed_write(index, directory, upserts=[], deletes=[victim])
                runs["delete, big segment"].append(cost)
            _, cost = _timed_write(index, directory, upserts=[memo], deletes=[], rebuild=True)
            runs["add, rebuild"].append(cost)
            for name, costs in runs.items():
                med = {k: statistics.median(c[k] for c in costs) for k in costs[0]}
                print(
                    f"| {copies}x | {size} | {name} | {med['update']:.2f} | "
                    f"{med['snapshot']:.2f} | {med['answerer']:.2f} | {med['total']:.2f} |"
                )
            ratio = statistics.median(c["total"] for c in runs["add"]) / cost["total"]
            print(f"|  |  | add / rebuild add | | | | {ratio:.3f} |")


if __name__ == "__main__":
    main()
