"""The one tokenizer of the lexical side: BM25 postings (``index/segment.py``) and evidence."""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS

__all__ = ["stem_words", "tokenize"]

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOP = frozenset(STOPWORDS_EN_PLUS) | {"many", "much", "whose", "also", "would", "could"}


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def stem_words(words: list[str]) -> list[str]:
    """The English stems of lowercased ``words``, in order (the lexical side's stemmer)."""
    return list(_stemmer().stemWords(words))


def tokenize(text: str) -> list[str]:
    """Stemmed content words of ``text`` in order, stopwords and bare numbers removed."""
    words = [w for w in _WORD.findall(text.lower()) if w not in _STOP and not w.isdigit()]
    return stem_words(words)
