"""A scoped search finds the same best sentences as an exact search over the scope alone,
whichever FAISS index a segment holds, and at any selectivity."""

from __future__ import annotations

import numpy as np
import pytest

from index import FaissStore


def _unit(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
@pytest.mark.parametrize("share", [0.01, 0.1, 0.5])
@pytest.mark.parametrize("selector", [False, True])
def test_a_scoped_search_is_the_exact_search_of_its_scope(
    kind: str, share: float, selector: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if selector:  # the index's own filtered search, as for a scope past EXACT_SCOPE
        monkeypatch.setattr("index.search.EXACT_SCOPE", 0)
    vectors = _unit(4000, 32, seed=7)
    store = FaissStore.from_vectors(
        vectors,
        hnsw_threshold=100 if kind == "hnsw" else 10**9,
        compress_threshold=1000 if kind == "ivfpq" else 10**9,
    )
    assert store.kind == kind
    rng = np.random.default_rng(1)
    allowed = rng.random(4000) < share
    queries = _unit(20, 32, seed=3)
    _, found = store.search(queries, 10, allowed)
    scope = np.nonzero(allowed)[0]
    hits = 0
    for row, query in enumerate(queries):
        exact = set(scope[np.argsort(-(vectors[scope] @ query))[:10]].tolist())
        got = [int(i) for i in found[row] if i >= 0]
        assert all(allowed[i] for i in got)  # nothing outside the scope, ever
        hits += len(exact & set(got))
    recall = hits / (10 * len(queries))
    # Exact where the scope is searched from its vectors; the index's own filtered search
    # is approximate for HNSW and compressed codes.
    assert recall == 1.0 if not selector or kind == "flat" else recall >= 0.9


def test_a_scope_with_no_sentence_finds_nothing() -> None:
    store = FaissStore.from_vectors(_unit(50, 8, seed=1))
    _, found = store.search(_unit(1, 8, seed=2), 5, np.zeros(50, dtype=bool))
    assert (found < 0).all()


@pytest.mark.parametrize("exact_scope", [0, 10**6])
def test_a_collection_scope_is_searched_alike_each_time_and_skips_removed_sentences(
    exact_scope: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read-only mask (a collection's) gets its search structure built once and kept; the
    # kept one answers as a fresh one does, and a removed sentence never comes back.
    monkeypatch.setattr("index.search.EXACT_SCOPE", exact_scope)
    vectors = _unit(3000, 32, seed=5)
    built = FaissStore.from_vectors(vectors, compress_threshold=1000)
    positions = np.arange(3000, dtype=np.int64)
    positions[::7] = -1  # removed sentences: their slots are tombstones
    store = FaissStore(built.index, positions, vectors)
    allowed = np.random.default_rng(2).random(3000) < 0.3
    queries = _unit(10, 32, seed=9)
    fresh = store.search(queries, 10, allowed.copy())
    allowed.flags.writeable = False
    kept = [store.search(queries, 10, allowed) for _ in range(2)]
    for scores, found in kept:
        np.testing.assert_array_equal(found, fresh[1])
        np.testing.assert_allclose(scores, fresh[0])
    live = set(positions[positions >= 0].tolist())
    assert all(int(i) in live and allowed[i] for i in fresh[1].ravel() if i >= 0)
    assert (fresh[1] >= 0).all()
