from __future__ import annotations

import json
from pathlib import Path

import pytest

from index import (
    CorpusIndex,
    Document,
    IndexFormatError,
    chunk_sentences,
    load_or_build,
    read_documents,
    segment,
)
from tests.conftest import ARTICLE, ARTICLE_TEXT, HashingEmbedder


def test_chunks_are_windows_of_whole_sentences() -> None:
    sentences = segment("a", ARTICLE_TEXT)
    chunks = chunk_sentences("a", sentences, size=3, stride=2)
    assert chunks[0].start == sentences[0].start and chunks[0].end == sentences[2].end
    assert chunks[-1].last == len(sentences) - 1
    starts = {s.start for s in sentences}
    ends = {s.end for s in sentences}
    assert all(c.start in starts and c.end in ends for c in chunks)


def test_index_round_trips_and_is_reused_when_nothing_changed(
    tmp_path: Path, hashing_embedder: HashingEmbedder
) -> None:
    docs = read_documents([ARTICLE])
    built = load_or_build(tmp_path, docs, hashing_embedder)
    manifest = json.loads(next((tmp_path / "snapshots").glob("*/manifest.json")).read_text())
    assert manifest["model_id"] == "test/hashing-64"
    assert manifest["dim"] == 64
    assert manifest["sentences"] == len(built.sentences) == 17
    assert manifest["format_version"] == 1
    again = load_or_build(tmp_path, docs, hashing_embedder)
    assert again.manifest.built_at == built.manifest.built_at  # loaded, not rebuilt
    assert [s.sentence_id for s in again.sentences] == [s.sentence_id for s in built.sentences]


def test_index_is_rebuilt_when_corpus_or_model_changes(
    tmp_path: Path, hashing_embedder: HashingEmbedder
) -> None:
    docs = read_documents([ARTICLE])
    first = load_or_build(tmp_path, docs, hashing_embedder)
    extra = Document("extra", "Extra", "A brand new sentence about batteries.")
    second = load_or_build(tmp_path, [*docs, extra], hashing_embedder)
    assert second.manifest.built_at != first.manifest.built_at
    assert "extra" in second.documents

    class OtherModel(HashingEmbedder):
        model_id = "test/other"

    third = load_or_build(tmp_path, [*docs, extra], OtherModel())
    assert third.manifest.model_id == "test/other"
    assert len(list((tmp_path / "snapshots").iterdir())) == 1  # old snapshots cleaned up


def test_corrupt_index_is_a_clear_error(tmp_path: Path, hashing_embedder: HashingEmbedder) -> None:
    CorpusIndex.build(read_documents([ARTICLE]), hashing_embedder).save(tmp_path)
    (snapshot,) = (tmp_path / "snapshots").iterdir()
    (snapshot / "vectors.faiss").write_bytes(b"not faiss")
    with pytest.raises(IndexFormatError, match="corrupt"):
        CorpusIndex.load(tmp_path)
    with pytest.raises(IndexFormatError, match="no index"):
        CorpusIndex.load(tmp_path / "missing")


def test_reads_txt_md_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("# Title\n\nSome text.")
    (tmp_path / "docs.jsonl").write_text(
        json.dumps({"doc_id": "d1", "title": "One", "text": "First."}) + "\n\n"
        + json.dumps({"doc_id": "d2", "text": "Second."}) + "\n"
    )  # fmt: skip
    docs = read_documents([tmp_path / "notes.md", tmp_path / "docs.jsonl"])
    assert [(d.doc_id, d.title) for d in docs] == [("notes", "notes"), ("d1", "One"), ("d2", "d2")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", '{"title": "no id"}\n', "bad.jsonl:1"),
        ("bad.pdf", "x", "unsupported file type"),
    ],
)
def test_bad_corpus_files_name_the_problem(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=message):
        read_documents([tmp_path / name])


def test_real_embedder_finds_the_cma_sentence(real_embedder: object, tmp_path: Path) -> None:
    from index import SentenceTransformerEmbedder

    assert isinstance(real_embedder, SentenceTransformerEmbedder)
    index = CorpusIndex.build(read_documents([ARTICLE]), real_embedder)
    index.save(tmp_path)
    loaded = CorpusIndex.load(tmp_path)
    scores, ids = loaded.store.search(
        real_embedder.encode(["Which platform underpins the Korean models?"]), 3
    )
    assert "Lingke energy saving platform CMA" in loaded.sentences[int(ids[0][0])].text
    assert scores[0][0] > 0.3
