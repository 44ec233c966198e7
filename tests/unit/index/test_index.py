from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import msgspec
import numpy as np
import pytest

from index import (
    MAX_SEGMENTS,
    Document,
    EmbedBatch,
    FaissStore,
    IndexFormatError,
    IndexMissingError,
    assemble,
    build_index,
    chunk_sentences,
    hold_snapshots,
    load_or_build,
    load_snapshot,
    merge_plan,
    merged_segment,
    read_documents,
    release_snapshots,
    save_snapshot,
    split_batch,
    split_sentences,
    update_index,
    with_merged,
)
from service import Settings
from service.answering import Retriever
from tests.conftest import ARTICLE, ARTICLE_TEXT, HashingEmbedder


def test_chunks_are_windows_of_whole_sentences() -> None:
    sentences = split_sentences("a", ARTICLE_TEXT)
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
    assert manifest["format_version"] == 3
    assert manifest["vector_index"] == "flat"
    (segment,) = manifest["segments"]
    assert set(segment["files"]) >= {"vectors.faiss", "sentences.json", "postings.npz"}
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


@pytest.mark.parametrize("victim", ["vectors.faiss", "postings.npz", "documents.jsonl"])
def test_corrupt_index_is_a_clear_error(
    tmp_path: Path, hashing_embedder: HashingEmbedder, victim: str
) -> None:
    save_snapshot(build_index(read_documents([ARTICLE]), hashing_embedder), tmp_path)
    (segment,) = (tmp_path / "segments").iterdir()
    (segment / victim).write_bytes(b"not what was written")  # BM25's files are checked too
    with pytest.raises(
        IndexFormatError, match=re.escape(f"{segment.name}/{victim}") + " is corrupt"
    ):
        load_snapshot(tmp_path)
    with pytest.raises(IndexFormatError, match="corrupt"):  # and never silently rebuilt
        load_or_build(tmp_path, read_documents([ARTICLE]), hashing_embedder)
    with pytest.raises(IndexMissingError, match="no index"):
        load_snapshot(tmp_path / "missing")


def test_index_of_another_format_is_a_clear_error(
    tmp_path: Path, hashing_embedder: HashingEmbedder
) -> None:
    save_snapshot(build_index(read_documents([ARTICLE]), hashing_embedder), tmp_path)
    (snapshot,) = (tmp_path / "snapshots").iterdir()
    (snapshot / "manifest.json").write_text(json.dumps({"format_version": 1}))
    with pytest.raises(IndexFormatError, match="format 1, but this version reads format 3"):
        load_snapshot(tmp_path)


def test_updates_reuse_vectors_and_a_changed_seed_keeps_added_documents(
    tmp_path: Path, hashing_embedder: HashingEmbedder
) -> None:
    seed = read_documents([ARTICLE])
    index = load_or_build(tmp_path, seed, hashing_embedder)
    added = Document("added", "Added", "Batteries come from a new plant. It opens in May.")
    index = update_index(index, hashing_embedder, upserts=[added])
    save_snapshot(index, tmp_path)
    assert set(index.documents) == {"renault-geely-mou", "added"}

    calls: list[int] = []

    class Counting(HashingEmbedder):
        def encode(self, texts, *, progress=False):  # type: ignore[no-untyped-def]
            calls.append(len(texts))
            return super().encode(texts, progress=progress)

    grown = seed[0].text + "\n\nA new line."
    new_seed = [Document("renault-geely-mou", "renault-geely-mou", grown)]
    reloaded = load_or_build(tmp_path, new_seed, Counting())
    assert set(reloaded.documents) == {"renault-geely-mou", "added"}  # API document kept
    assert calls == [1]  # only the new sentence was embedded
    assert reloaded.documents["renault-geely-mou"].text.endswith("A new line.")
    removed = update_index(reloaded, hashing_embedder, deletes=["added"])
    assert set(removed.documents) == {"renault-geely-mou"}
    assert all(s.doc_id == "renault-geely-mou" for s in removed.sentences)


def test_large_corpora_get_an_hnsw_index_with_high_recall() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    exact = FaissStore.from_vectors(vectors, hnsw_threshold=10_000)
    approx = FaissStore.from_vectors(vectors, hnsw_threshold=1_000)
    assert (exact.kind, approx.kind) == ("flat", "hnsw")
    queries = vectors[:200] + 0.1 * rng.normal(size=(200, 32)).astype(np.float32)
    _, truth = exact.search(queries, 10)
    _, found = approx.search(queries, 10)
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found, strict=True)])
    assert recall > 0.95


def test_big_segments_keep_compressed_codes_and_re_rank_them_exactly(
    tmp_path: Path, hashing_embedder: HashingEmbedder
) -> None:
    rng = np.random.default_rng(1)  # sentences come in topics: clusters, not noise
    topics = rng.normal(size=(40, 32)).astype(np.float32)
    vectors = topics[rng.integers(0, 40, 2000)] + 0.4 * rng.normal(size=(2000, 32))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    exact = FaissStore.from_vectors(vectors)
    compressed = FaissStore.from_vectors(vectors, compress_threshold=1_000)
    assert compressed.kind == "ivfpq"
    queries = vectors[:100] + 0.1 * rng.normal(size=(100, 32)).astype(np.float32)
    truth_scores, truth = exact.search(queries, 10)
    scores, found = compressed.search(queries, 10)
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found, strict=True)])
    assert recall > 0.95
    hit = found == truth
    np.testing.assert_allclose(scores[hit], truth_scores[hit], rtol=1e-5)  # exact scores
    # Through the index: a merge or build that big gets the codes, and they survive a reload.
    docs = [Document(f"d{n}", f"D{n}", f"Plant {n} opens in May. It is new.") for n in range(150)]
    index = build_index(docs, hashing_embedder, compress_threshold=50)
    assert index.manifest.vector_index == "ivfpq"
    save_snapshot(index, tmp_path)
    reloaded = load_snapshot(tmp_path)
    query = hashing_embedder.encode(["When does plant 7 open?"])
    assert reloaded.store.search(query, 5)[1].tolist() == index.store.search(query, 5)[1].tolist()


def test_reads_txt_md_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("# Title\n\nSome text.")
    (tmp_path / "docs.jsonl").write_text(
        json.dumps({"doc_id": "d1", "title": "One", "text": "First."}) + "\n\n"
        + json.dumps({"doc_id": "d2", "text": "Second."}) + "\n"
    )  # fmt: skip
    docs = read_documents([tmp_path / "notes.md", tmp_path / "docs.jsonl"])
    assert [(d.doc_id, d.title) for d in docs] == [("notes", "Title"), ("d1", "One"), ("d2", "d2")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", '{"title": "no id"}\n', "bad.jsonl:1"),
        ("bad.pdf", "x", "the name says PDF but the bytes are TEXT"),
        ("bad.xlsx", "x", "unsupported file type"),
        ("bad.meta.json", '{"title": ""}', "bad.meta.json"),
        ("bad.meta.json", '{"titel": "Typo"}', "titel"),
    ],
)
def test_bad_corpus_files_name_the_problem(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    (tmp_path / name).write_text(content)
    (tmp_path / "bad.txt").write_text("A text whose sidecar is wrong.")
    with pytest.raises(ValueError, match=message):
        read_documents([tmp_path / (name if not name.endswith(".meta.json") else "bad.txt")])


def test_real_embedder_finds_the_cma_sentence(real_embedder: object, tmp_path: Path) -> None:
    from index import SentenceTransformerEmbedder

    assert isinstance(real_embedder, SentenceTransformerEmbedder)
    index = build_index(read_documents([ARTICLE]), real_embedder)
    save_snapshot(index, tmp_path)
    loaded = load_snapshot(tmp_path)
    scores, ids = loaded.store.search(
        real_embedder.encode(["Which platform underpins the Korean models?"]), 3
    )
    assert "Lingke energy saving platform CMA" in loaded.sentences[int(ids[0][0])].text
    assert scores[0][0] > 0.3


def test_an_unsynced_seed_only_fills_an_empty_index(
    tmp_path: Path, hashing_embedder: HashingEmbedder
) -> None:
    other = Document("other", "Other", "Only this document was indexed on purpose.")
    save_snapshot(build_index([other], hashing_embedder), tmp_path)
    article = read_documents([ARTICLE])
    kept = load_or_build(tmp_path, article, hashing_embedder, sync_seed=False)
    assert set(kept.documents) == {"other"}
    fresh = load_or_build(tmp_path / "empty", article, hashing_embedder, sync_seed=False)
    assert set(fresh.documents) == {"renault-geely-mou"}


def test_markdown_files_are_titled_by_their_first_heading(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("Preface.\n\n# Plant Notes\n\nText.\n\n## Section\n")
    (tmp_path / "plain.md").write_text("No heading here.\n")
    (tmp_path / "heading.txt").write_text("# Not markdown\n")
    docs = read_documents(sorted(tmp_path.iterdir()))
    assert {d.doc_id: d.title for d in docs} == {
        "heading": "heading",
        "notes": "Plant Notes",
        "plain": "plain",
    }


def test_a_sidecar_titles_a_text_file_and_leaves_its_text_alone(tmp_path: Path) -> None:
    (tmp_path / "memo.txt").write_text("The plant opens in May.")
    (tmp_path / "memo.meta.json").write_text(
        json.dumps({"title": "The May plant", "metadata": {"source": "Board minutes"}})
    )
    (doc,) = read_documents([tmp_path / "memo.txt"])
    assert (doc.title, doc.text, doc.metadata) == (
        "The May plant", "The plant opens in May.", {"source": "Board minutes"}
    )  # fmt: skip
    (article,) = read_documents([ARTICLE])  # the bundled article is titled this way
    assert article.title.startswith("Renault and Geely sign a memorandum")


def _memo(n: int) -> Document:
    return Document(f"memo-{n}", f"Memo {n}", f"Plant {n} opens in May. It is new.")


def test_a_write_adds_a_segment_of_its_own_and_leaves_the_others_as_they_were(
    tmp_path: Path, hashing_embedder: HashingEmbedder
) -> None:
    index = build_index(read_documents([ARTICLE]), hashing_embedder)
    save_snapshot(index, tmp_path)
    (base,) = (tmp_path / "segments").iterdir()
    before = {p.name: p.stat().st_mtime_ns for p in base.iterdir()}
    index = update_index(index, hashing_embedder, upserts=[_memo(1), _memo(2)])
    save_snapshot(index, tmp_path)
    assert len(index.segments) == 2 and len(index.segments[1].sentences) == 4
    assert {p.name: p.stat().st_mtime_ns for p in base.iterdir()} == before  # not rewritten
    # Replacing a document tombstones its old sentences where they live.
    index = update_index(index, hashing_embedder, upserts=[Document("memo-2", "Memo 2", "Closed.")])
    assert (len(index.segments), index.tombstones) == (3, 2)
    save_snapshot(index, tmp_path)
    reloaded = load_snapshot(tmp_path)
    assert reloaded.content_digest == index.content_digest
    assert reloaded.tombstones == 2
    query = hashing_embedder.encode(["When does plant 2 open?"])
    _, ids = reloaded.store.search(query, len(reloaded.sentences))
    assert "Plant 2 opens in May." not in {reloaded.sentences[int(i)].text for i in ids[0]}
    assert len(list((tmp_path / "segments").iterdir())) == 3
    # A segment left with nothing live is dropped, and its files removed.
    save_snapshot(update_index(reloaded, hashing_embedder, deletes=["memo-1"]), tmp_path)
    assert len(list((tmp_path / "segments").iterdir())) == 2
    # A replica that holds segments already reads only the new ones: segments never change.
    followed = load_snapshot(tmp_path, previous=reloaded)
    assert followed.segments[0] is reloaded.segments[0]
    assert followed.content_digest == load_snapshot(tmp_path).content_digest


def test_bm25_scores_do_not_depend_on_how_the_corpus_is_segmented(
    hashing_embedder: HashingEmbedder,
) -> None:
    docs = [*read_documents([ARTICLE]), *(_memo(n) for n in range(5))]
    whole = build_index(docs, hashing_embedder)
    pieces = build_index(docs[:2], hashing_embedder)
    for doc in docs[2:]:  # a segment per write, and a deleted document tombstoned on the way
        pieces = update_index(pieces, hashing_embedder, upserts=[doc, _memo(99)])
    pieces = update_index(pieces, hashing_embedder, deletes=["memo-99"])
    assert len(pieces.segments) == 5 and pieces.tombstones > 0
    assert pieces.content_digest == whole.content_digest
    for question in ["When does plant 3 open?", "Geely Renault memorandum engines", "May"]:
        scores, ids = pieces.lexical.search(question, 10)
        expected_scores, expected_ids = whole.lexical.search(question, 10)
        assert ids.tolist() == expected_ids.tolist()
        np.testing.assert_allclose(scores, expected_scores, rtol=1e-5)


def test_merges_fold_adjacent_small_segments_and_keep_later_deletes(
    tmp_path: Path, hashing_embedder: HashingEmbedder
) -> None:
    index = build_index(read_documents([ARTICLE]), hashing_embedder)
    for n in range(MAX_SEGMENTS):
        index = update_index(index, hashing_embedder, upserts=[_memo(n)])
    assert len(index.segments) == MAX_SEGMENTS + 1
    plan = merge_plan(index)
    names = [s.name for s in index.segments]
    start = names.index(plan[0])
    assert len(plan) > 1 and names[start : start + len(plan)] == plan  # adjacent
    assert index.segments[0].name not in plan  # the big one is left alone
    merged = merged_segment(index, plan)
    # A write lands while the merge runs: it deletes a document the merge folded in.
    folded = merged.documents[0].doc_id
    index = update_index(index, hashing_embedder, deletes=[folded])
    after = with_merged(index, merged, plan)
    left = [s for s in index.segments if s.name in plan]  # the emptied one was dropped
    assert after is not None and len(after.segments) == len(index.segments) - len(left) + 1
    assert folded not in after.documents and after.content_digest == index.content_digest
    assert [s.sentence_id for s in after.sentences] == [s.sentence_id for s in index.sentences]
    save_snapshot(after, tmp_path)
    assert load_snapshot(tmp_path).content_digest == index.content_digest
    assert merge_plan(after) == []
    # A mostly tombstoned segment is rewritten on its own.
    base = after.segments[0].name
    emptied = update_index(after, hashing_embedder, upserts=[_memo(0), _memo(1), _memo(2)])
    assert merge_plan(emptied) == [base] or len(emptied.segments) <= MAX_SEGMENTS


def test_an_index_of_the_previous_format_is_indexed_again_without_losing_documents(
    tmp_path: Path, hashing_embedder: HashingEmbedder
) -> None:
    snapshot = tmp_path / "snapshots" / "old"
    snapshot.mkdir(parents=True)
    (snapshot / "documents.jsonl").write_bytes(msgspec.json.encode(_memo(1)) + b"\n")
    (snapshot / "manifest.json").write_text(
        json.dumps({"format_version": 2, "seed_checksum": "seeded-earlier"})
    )
    (tmp_path / "CURRENT").write_text("old")
    with pytest.raises(IndexFormatError, match="format 2"):
        load_snapshot(tmp_path)
    index = load_or_build(tmp_path, read_documents([ARTICLE]), hashing_embedder)
    assert "memo-1" in index.documents  # added through the API once: kept
    assert not snapshot.exists()


def test_updates_give_the_index_a_fresh_build_would(hashing_embedder: HashingEmbedder) -> None:
    docs = read_documents([ARTICLE])
    extra = Document(doc_id="memo", title="Memo", text="The plant opens in May. It is new.")
    base = build_index(docs, hashing_embedder)
    Retriever(base, hashing_embedder, Settings())  # counts the corpus's terms once
    grown = update_index(base, hashing_embedder, upserts=[extra])
    fresh = build_index([*docs, extra], hashing_embedder)
    assert grown.content_digest == fresh.content_digest
    query = hashing_embedder.encode(["When does the plant open?"])
    assert grown.store.search(query, 5)[1].tolist() == fresh.store.search(query, 5)[1].tolist()
    settings = Settings()
    assert Retriever(grown, hashing_embedder, settings).idf == (
        Retriever(fresh, hashing_embedder, settings).idf
    )  # the counts carried across the write, plus the new document's, are the fresh ones
    shrunk = update_index(grown, hashing_embedder, deletes=["memo"])
    again = build_index(docs, hashing_embedder)
    assert Retriever(shrunk, hashing_embedder, settings).idf == (
        Retriever(again, hashing_embedder, settings).idf
    )
    assert shrunk.content_digest == again.content_digest
    assert shrunk.store.search(query, 5)[1].tolist() == again.store.search(query, 5)[1].tolist()


def test_an_index_split_another_way_is_rebuilt_not_updated(
    tmp_path: Path, hashing_embedder: HashingEmbedder
) -> None:
    docs = read_documents([ARTICLE])
    extra = Document(doc_id="memo", title="Memo", text="The plant opens in May. It is new.")
    index = update_index(build_index(docs, hashing_embedder), hashing_embedder, upserts=[extra])
    index.manifest = msgspec.structs.replace(index.manifest, segmenter="other 1.0 de")
    save_snapshot(index, tmp_path)
    reopened = load_or_build(tmp_path, docs, hashing_embedder)
    assert reopened.manifest.segmenter != "other 1.0 de"
    assert set(reopened.documents) == {"renault-geely-mou", "memo"}  # added documents stay
    assert reopened.content_digest == build_index([*docs, extra], hashing_embedder).content_digest


def test_the_build_stages_over_batches_give_the_index_a_single_build_gives(
    tmp_path: Path, hashing_embedder: HashingEmbedder
) -> None:
    docs = [
        *read_documents([ARTICLE]),
        Document(doc_id="memo", title="Memo", text="The plant opens in May. It is new."),
        Document(doc_id="note", title="Note", text="Geely builds engines. Renault sells cars."),
    ]
    # As map_batches would: documents in batches of two, sentences in batches of five.
    rows: dict[str, list[object]] = {}
    for i in range(0, len(docs), 2):
        part = docs[i : i + 2]
        split = split_batch({"doc_id": [d.doc_id for d in part], "text": [d.text for d in part]})
        for j in range(0, len(split["text"]), 5):
            embedded = EmbedBatch(hashing_embedder)({k: v[j : j + 5] for k, v in split.items()})
            for column, values in embedded.items():
                rows.setdefault(column, []).extend(values)
    staged = assemble(docs, rows, hashing_embedder)
    single = build_index(docs, hashing_embedder)
    assert staged.content_digest == single.content_digest
    np.testing.assert_allclose(staged.vectors, single.vectors, atol=1e-6)
    query = hashing_embedder.encode(["Who builds engines?"])
    assert staged.store.search(query, 3)[1].tolist() == single.store.search(query, 3)[1].tolist()


def test_a_snapshot_a_reader_holds_survives_writes_until_its_lease_goes_stale(
    tmp_path: Path, hashing_embedder: HashingEmbedder
) -> None:
    docs = read_documents([ARTICLE])
    index = build_index(docs, hashing_embedder)
    first = save_snapshot(index, tmp_path).name
    hold_snapshots(tmp_path, "replica-1", [first])
    memo = Document(doc_id="memo", title="Memo", text="The plant opens in May.")
    second = update_index(index, hashing_embedder, upserts=[memo])
    save_snapshot(second, tmp_path)
    assert (tmp_path / "snapshots" / first).is_dir()  # held: a replica may be loading it
    old = time.time() - 3600
    os.utime(tmp_path / "leases" / "replica-1", (old, old))
    save_snapshot(update_index(second, hashing_embedder, deletes=["memo"]), tmp_path)
    assert not (tmp_path / "snapshots" / first).exists()  # the stale lease held nothing
    assert not (tmp_path / "leases" / "replica-1").exists()
    hold_snapshots(tmp_path, "replica-2", ["x"])
    release_snapshots(tmp_path, "replica-2")
    assert list((tmp_path / "leases").iterdir()) == []


def test_a_build_on_ray_equals_a_local_build(hashing_embedder: HashingEmbedder) -> None:
    from index import build_on_ray

    docs = [
        *read_documents([ARTICLE]),
        Document(doc_id="memo", title="Memo", text="The plant opens in May. It is new."),
    ]
    on_ray = build_on_ray(
        docs,
        model_id=hashing_embedder.model_id,
        make_embedder=HashingEmbedder,
        docs_per_batch=1,
        sentences_per_batch=4,
    )
    local = build_index(docs, hashing_embedder)
    assert on_ray.content_digest == local.content_digest
    assert on_ray.manifest.model_id == local.manifest.model_id
    np.testing.assert_allclose(on_ray.vectors, local.vectors, atol=1e-6)
