"""Sentence splitting that keeps exact ``[start, end)`` offsets into the document.

pysbd splits each paragraph; Chinese and Japanese sentences, which pysbd's English rules
leave whole, are then split after their enders (``。！？；`` and their closing quotes).
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

import msgspec
import pysbd

__all__ = ["SPLITTER", "Sentence", "split_sentences", "split_spans"]

# Blank lines always end a sentence; single line breaks are left to the splitter,
# since wrapped text ("O\n2 gas") often continues a sentence across them.
_PARAGRAPH = re.compile(r"\n[^\S\n]*\n\s*")
_SOFT_SPACE = re.compile(r"[\n\r\t\f\v\u00a0\u3000]")


class Sentence(msgspec.Struct, frozen=True):
    """One sentence; ``text == document.text[start:end]``."""

    sentence_id: str
    doc_id: str
    start: int
    end: int
    text: str


LANGUAGE = "en"
# What split the sentences: an index split another way is rebuilt, not updated.
SPLITTER = f"pysbd {getattr(pysbd, '__version__', '?')} {LANGUAGE} + cjk enders"
# After a CJK sentence ender and any closing quotes or brackets.
_CJK_END = re.compile(r"(?<=[。！？；])[」』”’）)\]]*")


@lru_cache(maxsize=1)
def _pysbd() -> pysbd.Segmenter:
    return pysbd.Segmenter(language=LANGUAGE, clean=False)


def _trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _split_paragraph(text: str, start: int, end: int) -> list[tuple[int, int]]:
    # Same-length substitution: offsets in ``flat`` are offsets in ``text``.
    flat = _SOFT_SPACE.sub(" ", text[start:end])
    spans: list[tuple[int, int]] = []
    cursor = 0
    for piece in _pysbd().segment(flat):
        found = flat.find(piece, cursor)
        if found < 0:  # the splitter altered the text; keep what is left whole
            break
        cursor = found + len(piece)
        for ender in _CJK_END.finditer(piece):
            if 0 < ender.end() < len(piece):
                spans.append((start + found, start + found + ender.end()))
        spans.append((start + found, start + cursor))
    if cursor < len(flat):
        spans.append((start + cursor, end))
    # Boundaries only come from where pieces end, so text between pieces is never lost.
    bounded: list[tuple[int, int]] = []
    previous = start
    for _, piece_end in spans:
        span = _trimmed(text, previous, piece_end)
        if span:
            bounded.append(span)
        previous = piece_end
    return bounded


def split_spans(text: str) -> list[tuple[int, int]]:
    """Return sentence spans that cover every non-space character of ``text`` in order."""
    spans: list[tuple[int, int]] = []
    previous = 0
    for match in [*_PARAGRAPH.finditer(text), None]:
        para_end = match.start() if match else len(text)
        if _trimmed(text, previous, para_end):
            spans.extend(_split_paragraph(text, previous, para_end))
        if match:
            previous = match.end()
    return spans


def _sentence_id(doc_id: str, text: str, occurrence: int) -> str:
    digest = hashlib.sha1(f"{doc_id}\0{text}\0{occurrence}".encode()).hexdigest()
    return f"{doc_id}:s{digest[:12]}"


def split_sentences(doc_id: str, text: str) -> list[Sentence]:
    """Split a document into sentences whose ids depend only on doc id and content."""
    seen: dict[str, int] = {}
    sentences = []
    for start, end in split_spans(text):
        body = text[start:end]
        occurrence = seen.get(body, 0)
        seen[body] = occurrence + 1
        sentences.append(
            Sentence(
                sentence_id=_sentence_id(doc_id, body, occurrence),
                doc_id=doc_id,
                start=start,
                end=end,
                text=body,
            )
        )
    return sentences
