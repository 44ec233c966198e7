"""The citeqa command: index builds keep an existing index unless told to; index check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from index import (
    Document,
    build_index,
    load_snapshot,
    read_documents,
    save_snapshot,
    update_index,
)
from service import main
from tests.conftest import ARTICLE, HashingEmbedder


def test_index_build_never_silently_replaces_an_index(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "index"
    first = runner.invoke(main, ["index", "build", str(ARTICLE), "--out", str(out)])
    assert first.exit_code == 0, first.output
    assert "indexed 1 documents, 17 sentences" in first.output
    again = runner.invoke(main, ["index", "build", str(ARTICLE), "--out", str(out)])
    assert again.exit_code != 0 and "already holds an index" in again.output
    replaced = runner.invoke(main, ["index", "build", str(ARTICLE), "--out", str(out), "--force"])
    assert replaced.exit_code == 0, replaced.output


def test_eval_keeps_to_an_index_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = tmp_path / "served"
    monkeypatch.setenv("CITEQA_INDEX_DIR", str(served))
    result = CliRunner().invoke(main, ["eval", "--mode", "extractive", "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert "questions: 2" in result.output
    assert not served.exists()  # documents added to the served index cannot sway the figures
    assert [p.name[:5] for p in tmp_path.iterdir()] == ["eval-"]


def test_index_check_reports_a_digest_that_does_not_depend_on_the_build(
    tmp_path: Path, hashing_embedder: HashingEmbedder
) -> None:
    docs = read_documents([ARTICLE])
    save_snapshot(build_index(docs, hashing_embedder), tmp_path / "one")
    # The same documents reached another way: an empty start, then an update.
    empty = build_index([], hashing_embedder)
    save_snapshot(update_index(empty, hashing_embedder, upserts=docs), tmp_path / "two")
    runner = CliRunner()
    reports = []
    for name in ("one", "two"):
        result = runner.invoke(main, ["index", "check", str(tmp_path / name), "--json"])
        assert result.exit_code == 0, result.output
        reports.append(json.loads(result.output))
    assert reports[0]["content_digest"] == reports[1]["content_digest"]
    assert reports[0]["documents"] == 1 and reports[0]["sentences"] == 17
    assert reports[0]["files_verified"] > 5  # BM25's files included
    assert reports[0]["tombstones"] == 0
    memo = Document(doc_id="memo", title="Memo", text="Plant opens.")
    both = build_index([*docs, memo], hashing_embedder)  # one segment, memo's in it
    save_snapshot(update_index(both, hashing_embedder, deletes=["memo"]), tmp_path / "three")
    three = json.loads(
        runner.invoke(main, ["index", "check", str(tmp_path / "three"), "--json"]).output
    )
    assert three["tombstones"] == 1 and three["content_digest"] == reports[0]["content_digest"]

    (segment,) = (tmp_path / "one" / "segments").iterdir()
    (segment / "sentences.json").write_text("[]")
    broken = runner.invoke(main, ["index", "check", str(tmp_path / "one")])
    assert broken.exit_code != 0 and "sentences.json is corrupt" in broken.output


@pytest.mark.parametrize(
    ("trusted", "proxy_headers", "allowed"),
    [("", False, None), ("10.0.0.2", True, "10.0.0.2")],
)
def test_serve_believes_forwarded_headers_only_from_configured_proxies(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    trusted: str,
    proxy_headers: bool,
    allowed: str | None,
) -> None:
    import uvicorn

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    monkeypatch.setenv("CITEQA_TRUSTED_PROXIES", trusted)
    monkeypatch.setenv("CITEQA_INDEX_DIR", str(tmp_path / "index"))
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 0, result.output
    assert seen["proxy_headers"] is proxy_headers and seen["forwarded_allow_ips"] == allowed


def test_index_build_reads_a_pdf_and_keeps_it_and_refuses_an_encrypted_one(
    tmp_path: Path,
) -> None:
    files = Path(__file__).resolve().parents[2] / "data" / "files"
    runner = CliRunner()
    out = tmp_path / "paper"
    built = runner.invoke(
        main, ["index", "build", str(files / "multicolumn.pdf"), "--out", str(out)]
    )
    assert built.exit_code == 0, built.output
    assert "indexed 1 documents" in built.output
    assert [p.suffix for p in (out / "originals").iterdir()] == [".pdf"]
    locked = runner.invoke(
        main,
        [
            "index",
            "build",
            str(files / "libreoffice-writer-password.pdf"),
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert locked.exit_code != 0 and "encrypted; remove its password" in locked.output


def test_index_build_puts_documents_into_the_collection_named(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "index"
    built = runner.invoke(
        main, ["index", "build", str(ARTICLE), "--out", str(out), "--collection", "press"]
    )
    assert built.exit_code == 0, built.output
    (doc,) = load_snapshot(out).documents.values()
    assert (doc.collection, doc.name) == ("press", "renault-geely-mou")
    bad = runner.invoke(
        main, ["index", "build", str(ARTICLE), "--out", str(tmp_path / "x"), "--collection", "a/b"]
    )
    assert bad.exit_code == 2 and "--collection" in bad.output
