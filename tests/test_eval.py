"""The conversation eval plays turns through the chat pipeline and scores the last one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from index import load_or_build, read_documents
from service import Answerer, Settings
from service._eval import evaluate_conversations, read_conversations
from tests.conftest import HashingEmbedder, QueuedUpstream, label_of

pytestmark = pytest.mark.anyio


async def test_conversations_are_played_and_their_last_turn_scored(
    tmp_path: Path, settings: Settings, hashing_embedder: HashingEmbedder, upstream: QueuedUpstream
) -> None:
    path = tmp_path / "conversations.json"
    path.write_text(
        json.dumps(
            {
                "conversations": [
                    {"id": "a", "turns": ["Which carmaker signed a memorandum with Geely?",
                                          "How many employees does it have?"],
                     "accept": [["18 10000"]], "gold": ["employees"]},
                    {"id": "b", "turns": ["Who signed the memorandum with Renault group?",
                                          "What is its share price?"], "answerable": False},
                ]
            }
        )
    )  # fmt: skip
    index = load_or_build(settings.index_dir, read_documents(settings.seed_paths), hashing_embedder)
    answerer = Answerer(index, hashing_embedder, upstream.model(), settings)
    await answerer.warm()
    signed = label_of(upstream, "memorandum of understanding")
    employees = label_of(upstream, "employees")
    upstream.queue(
        f"Renault group signed the memorandum of understanding {signed}.",
        "How many employees does Renault group have?",
        f"Renault group has 18 10000 employees {employees}.",
        f"Geely Holding Group signed the memorandum of understanding {signed}.",
        "What is Geely Holding Group's share price?",
        "NOT FOUND",
    )
    result = await evaluate_conversations(answerer, read_conversations(path))
    first, second = result["rows"]
    assert first["question"] == "How many employees does Renault group have?"
    assert first["correct"] and first["gold_cited"]
    assert first["transcript"][1]["role"] == "assistant"
    assert "Sources:" in first["transcript"][1]["content"]  # as chat returned it
    assert second["abstained"] and not second["answerable"]
    assert result["figures"]["score"] == 1.0
