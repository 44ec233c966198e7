"""Lexical side of the index: one tokenizer, and a BM25 index over sentences (bm25s)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import bm25s
import numpy as np
import numpy.typing as npt
import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS

__all__ = ["LexicalIndex", "tokenize"]

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOP = frozenset(STOPWORDS_EN_PLUS) | {"many", "much", "whose", "also", "would", "could"}


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def tokenize(text: str) -> list[str]:
    """Stemmed content words of ``text`` in order, stopwords and bare numbers removed."""
    words = [w for w in _WORD.findall(text.lower()) if w not in _STOP and not w.isdigit()]
    return list(_stemmer().stemWords(words))


class LexicalIndex:
    """BM25 over sentences; ids are positions in the sentence list."""

    def __init__(self, bm25: bm25s.BM25 | None, size: int) -> None:
        self._bm25 = bm25
        self._size = size

    @classmethod
    def from_tokens(cls, tokens: Sequence[list[str]]) -> LexicalIndex:
        """Index texts passed through :func:`tokenize`, one list per sentence.

        An all-empty corpus gives an index that finds nothing.
        """
        corpus = [t or ["\0"] for t in tokens]
        if not corpus:
            return cls(None, 0)
        bm25 = bm25s.BM25()
        bm25.index(corpus, show_progress=False)
        return cls(bm25, len(corpus))

    @classmethod
    def load(cls, path: Path, size: int) -> LexicalIndex:
        """Read an index written by :meth:`save`."""
        if size == 0:
            return cls(None, 0)
        return cls(bm25s.BM25.load(str(path)), size)

    def save(self, path: Path) -> None:
        """Write the index under the directory ``path``."""
        path.mkdir(parents=True, exist_ok=True)
        if self._bm25 is not None:
            self._bm25.save(str(path))

    def search(self, query: str, k: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Ids and BM25 scores of the best ``k`` sentences with any query term, best first."""
        tokens = tokenize(query)
        empty = (np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64))
        if self._bm25 is None or not tokens:
            return empty
        ids, scores = self._bm25.retrieve([tokens], k=min(k, self._size), show_progress=False)
        keep = scores[0] > 0
        return scores[0][keep].astype(np.float32), ids[0][keep].astype(np.int64)
