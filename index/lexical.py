"""The one tokenizer of the lexical side: BM25 postings (``index/search.py``) and evidence.

English words are stemmed and stopwords dropped. Chinese and Japanese have no spaces: each
run of their characters becomes its character bigrams (a lone character stays itself), the
usual unit of CJK full-text search, which needs no dictionary.
"""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS

__all__ = ["CJK", "WORD", "stem_words", "tokenize"]

CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"  # kana, Han
# A word: one CJK character, or a run of other letters and digits.
WORD = re.compile(rf"[{CJK}]|[^\W_{CJK}]+", re.UNICODE)
CJK_CHAR = re.compile(rf"[{CJK}]")  # one CJK character, for search() or fullmatch()
_STOP = frozenset(STOPWORDS_EN_PLUS) | {"many", "much", "whose", "also", "would", "could"}


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def stem_words(words: list[str]) -> list[str]:
    """The English stems of lowercased ``words``, in order (the lexical side's stemmer)."""
    return list(_stemmer().stemWords(words))


def tokenize(text: str) -> list[str]:
    """Stemmed content words of ``text`` in order, stopwords and bare numbers removed.

    CJK characters come out as the bigrams of each run of them, in order.
    """
    tokens: list[str] = []
    words: list[str] = []
    run: list[str] = []
    run_end = 0
    for match in WORD.finditer(text.lower()):
        word = match.group()
        if CJK_CHAR.fullmatch(word):
            if run and match.start() != run_end:
                tokens.extend(_bigrams(run))
                run = []
            run.append(word)
            run_end = match.end()
            continue
        if run:
            tokens.extend(_bigrams(run))
            run = []
        if word not in _STOP and not word.isdigit():
            words.append(word)
            tokens.append("\0")  # where the next stemmed word goes, to keep the order
    if run:
        tokens.extend(_bigrams(run))
    stems = iter(stem_words(words))
    return [next(stems) if t == "\0" else t for t in tokens]


def _bigrams(run: list[str]) -> list[str]:
    return ["".join(run[i : i + 2]) for i in range(max(len(run) - 1, 1))]
