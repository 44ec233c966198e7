"""Index build throughput: one process against Ray Data on the same machine, in the same run.

    .venv/bin/python benchmarks/ray_build.py [DOCS.jsonl ...] [--actors 2]

Default corpus: the 24 SQuAD articles. Both builds split, embed (the real MiniLM model)
and assemble the same documents; the script checks that they give the same content digest
and prints sentences per second for each and the ratio. The Ray figure includes starting a
local Ray and loading the model once per actor.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from index import SentenceTransformerEmbedder, build_index, build_on_ray, read_documents

SQUAD_DOCS = Path(__file__).resolve().parents[2] / "shared" / "eval" / "squad" / "docs.jsonl"


def main() -> None:
    """Build both ways and print the rates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[SQUAD_DOCS])
    parser.add_argument("--actors", type=int, default=2)
    args = parser.parse_args()
    docs = read_documents(args.paths)

    started = time.perf_counter()
    local = build_index(docs, SentenceTransformerEmbedder())
    local_s = time.perf_counter() - started

    started = time.perf_counter()
    on_ray = build_on_ray(docs, actors=args.actors)
    ray_s = time.perf_counter() - started

    n = len(local.sentences)
    same = on_ray.content_digest == local.content_digest
    close = bool(np.allclose(on_ray.vectors, local.vectors, atol=1e-4))
    print(f"{'sentences':>26}: {n}")
    print(f"{'local s (sentences/s)':>26}: {local_s:.1f} ({n / local_s:.0f})")
    print(f"{'ray s (sentences/s)':>26}: {ray_s:.1f} ({n / ray_s:.0f}), {args.actors} actors")
    print(f"{'ray / local time':>26}: {ray_s / local_s:.2f}")
    print(f"{'same digest, vectors':>26}: {same}, {close}")


if __name__ == "__main__":
    main()
