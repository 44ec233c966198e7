"""Concurrent queries share one encode; a lone one is encoded at once."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from index import BatchingEmbedder, Vectors
from tests.conftest import HashingEmbedder


class SlowEmbedder(HashingEmbedder):
    """Holds its first call until released, and records the size of every call."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.entered, self.release = threading.Event(), threading.Event()

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> Vectors:
        self.calls.append(len(texts))
        if len(self.calls) == 1:
            self.entered.set()
            self.release.wait(5)
        return super().encode(texts, progress=progress)


def test_queries_that_arrive_together_share_one_encode_and_get_their_own_rows() -> None:
    inner = SlowEmbedder()
    batching = BatchingEmbedder(inner, max_batch=64)
    questions = [f"question number {n} about plant {n}" for n in range(9)]
    results: dict[int, Vectors] = {}

    def ask(n: int) -> None:
        results[n] = batching.encode([questions[n]])

    first = threading.Thread(target=ask, args=(0,))
    first.start()
    assert inner.entered.wait(5)  # the first is being encoded: the others queue behind it
    others = [threading.Thread(target=ask, args=(n,)) for n in range(1, 9)]
    for thread in others:
        thread.start()
    while len(batching._pending) < 8:
        threading.Event().wait(0.01)
    inner.release.set()
    for thread in [first, *others]:
        thread.join(5)
    assert inner.calls == [1, 8]  # one alone, then the eight that waited, together
    reference = HashingEmbedder()
    for n, question in enumerate(questions):
        assert np.allclose(results[n], reference.encode([question]))


def test_a_lone_query_and_a_build_go_straight_through() -> None:
    inner = SlowEmbedder()
    inner.release.set()
    batching = BatchingEmbedder(inner, max_batch=4)
    batching.encode(["one question"])
    batching.encode([f"sentence {n}" for n in range(10)])  # a build: more than a batch
    assert inner.calls == [1, 10]
    assert batching.model_id == inner.model_id and batching.dim == inner.dim
