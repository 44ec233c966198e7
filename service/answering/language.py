"""Which language a text is in, and what the service says in each language it answers in.

Chinese and Japanese are told by their script. Among languages written in Latin letters,
py3langid (its model ships in the package) decides, limited to the languages the service
answers in; a guess it is unsure of counts as English, the corpus language, so that an
English question is never sent to be translated by mistake.
"""

from __future__ import annotations

import re
from functools import lru_cache

from py3langid.langid import MODEL_FILE, LanguageIdentifier

from index import CJK_CHAR

__all__ = [
    "ABSTAIN_TEXTS",
    "LANGUAGE_NAMES",
    "abstain_text",
    "answer_language",
    "in_no_language",
    "language_of",
]

LANGUAGE_NAMES = {
    "en": "English",
    "zh": "Chinese",
    "fr": "French",
    "de": "German",
    "es": "Spanish",
    "ja": "Japanese",
}
ABSTAIN_TEXTS = {
    "en": "The documents do not answer this question.",
    "zh": "文档没有回答这个问题。",
    "fr": "Les documents ne répondent pas à cette question.",
    "de": "Die Dokumente beantworten diese Frage nicht.",
    "es": "Los documentos no responden a esta pregunta.",
    "ja": "文書はこの質問に答えていません。",
}
_KANA = re.compile(r"[\u3040-\u30ff]")
_LATIN = ("en", "fr", "de", "es")
# How sure py3langid (over the four Latin-script languages) must be that a text is not
# English. No English question of SQuAD's 448 or ours is above 0.5 for another language;
# short questions full of names ("Combien de marques compte Geely Holding Group ?", 0.77)
# are below 0.9.
_MIN_LATIN = 0.6
_MIN_CJK_SHARE = 0.2  # of the letters, for a text to count as Chinese or Japanese


@lru_cache(maxsize=1)
def _identifier() -> LanguageIdentifier:
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(_LATIN))
    return identifier


@lru_cache(maxsize=4096)
def language_of(text: str, sure: float = _MIN_LATIN) -> str:
    """The ISO 639-1 code of ``text``'s language, among ``LANGUAGE_NAMES``; "en" if unsure.

    ``sure`` is how sure a Latin-script text must be of another language than English.
    """
    letters = sum(ch.isalpha() for ch in text)
    if not letters:
        return "en"
    if len(CJK_CHAR.findall(text)) >= _MIN_CJK_SHARE * letters:
        return "ja" if _KANA.search(text) else "zh"
    language, probability = _identifier().classify(text)
    return str(language) if language != "en" and probability >= sure else "en"


def abstain_text(language: str) -> str:
    """The fixed sentence an abstention reads, in ``language`` (English if not one we speak)."""
    return ABSTAIN_TEXTS.get(language, ABSTAIN_TEXTS["en"])


_QUOTED = re.compile(r"[“\"][^”\"]*[”\"]|\[\d+\]")


_LETTERED = re.compile(r"[^\W\d_]+")


def in_no_language(answer: str) -> bool:
    """Whether an answer, its quotes and markers set aside, shows only names and figures.

    "2050 [1]", "Renault [1] (“Renault”)" and "Geely Holding Group [1]." read the same in
    every language: nothing in them was left untranslated. An English "Yes" or "No" is a
    word of a language.
    """
    words = _LETTERED.findall(_QUOTED.sub(" ", answer))
    return all(w[0].isupper() and w not in ("Yes", "No") for w in words)


def answer_language(answer: str) -> str:
    """The language an answer is written in, its quotes of the sources and markers set aside.

    "中国和韩国 [1]（“China and South Korea”）。" is Chinese; a bare quote is in the quote's
    language. The likeliest language counts, however unsure, since answers are short.
    """
    return language_of(_QUOTED.sub(" ", answer), sure=0.0)
