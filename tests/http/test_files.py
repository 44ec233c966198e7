"""PDF, HTML and Word files through ``POST /v1/documents``: cited by page and by character,
the page shown with the cited sentence lit up, and every unreadable file refused whole."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from pydantic import SecretStr

Client = Callable[..., TestClient[Any]]
ADMIN = {"Authorization": "Bearer admin-1"}
FILES = Path(__file__).resolve().parents[1] / "data" / "files"


@pytest.fixture
def client(make_client: Client) -> TestClient[Any]:
    return make_client(admin_keys=SecretStr("admin-1"), max_pdf_pages=3)


def _upload(
    client: TestClient[Any], name: str, data: bytes, **fields: str
) -> Any:  # httpx.Response
    return client.post(
        "/v1/documents",
        files=[("file", (name, data, "application/octet-stream"))],
        data=fields,
        headers=ADMIN,
    )


def _ids(client: TestClient[Any]) -> set[str]:
    return {d["doc_id"] for d in client.get("/v1/documents").json()["documents"]}


def test_a_pdf_is_cited_by_page_and_its_page_is_shown_lit_up(client: TestClient[Any]) -> None:
    data = (FILES / "multicolumn.pdf").read_bytes()
    added = _upload(client, "paper.pdf", data, doc_id="lorem", metadata='{"year": 2024}')
    assert added.status_code == 201, added.text
    assert added.json()["documents"][0]["title"] == "Two-Column Document with Lorem Ipsum"
    doc = client.get("/v1/documents/lorem").json()
    pages = doc["pages"]
    assert len(pages) == 3 and pages[0] == 0
    assert doc["page_image"] == "/v1/documents/lorem/pages/{page}"
    for s in doc["sentences"]:
        assert doc["text"][s["start"] : s["end"]] == s["text"]
    # A sentence found only on page 3, asked in its own words, is cited on page 3.
    target = next(
        s
        for s in doc["sentences"]
        if s["start"] > pages[2]
        and doc["text"].count(s["text"]) == 1
        and len(s["text"].split()) > 6
    )
    body = client.post(
        "/v1/ask", json={"question": target["text"], "answer_mode": "extractive"}
    ).json()
    citation = body["citations"][0]
    assert citation["page"] == 3 and citation["text"] == target["text"]
    streamed = client.post(
        "/v1/ask",
        json={"question": target["text"], "answer_mode": "extractive", "stream": True},
    ).text
    assert "event: citation" in streamed and '"page":3' in streamed

    image = client.get(
        f"/v1/documents/lorem/pages/3?start={citation['start']}&end={citation['end']}"
    )
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    plain = client.get("/v1/documents/lorem/pages/3")
    assert image.content[:8] == b"\x89PNG\r\n\x1a\n" and image.content != plain.content
    assert client.get("/v1/documents/lorem/pages/4").status_code == 404
    bad = client.get("/v1/documents/lorem/pages/1?start=50&end=10")
    assert bad.status_code == 400 and "start < end" in bad.json()["detail"]


def test_a_web_page_and_a_word_file_get_in_with_their_titles(client: TestClient[Any]) -> None:
    import docx

    page = _upload(client, "news.html", (FILES / "article.html").read_bytes())
    assert page.status_code == 201, page.text
    assert page.json()["documents"][0]["title"].startswith("Renault and Geely")
    document = docx.Document()
    document.add_heading("Plant notes", level=1)
    document.add_paragraph("The batteries are made in Ningbo.")
    out = io.BytesIO()
    document.save(out)
    word = _upload(client, "notes.docx", out.getvalue())
    assert word.status_code == 201 and word.json()["documents"][0]["title"] == "Plant notes"
    body = client.post(
        "/v1/ask",
        json={"question": "Where are the batteries made?", "answer_mode": "extractive"},
    ).json()
    assert "Ningbo" in body["answer"] and body["citations"][0]["page"] is None
    assert client.get("/v1/documents/news/pages/1").status_code == 404  # no pages to show


@pytest.mark.parametrize(
    ("name", "data", "status", "says"),
    [
        ("secret.pdf", (FILES / "libreoffice-writer-password.pdf").read_bytes(), 422, "encrypted"),
        ("scan.pdf", (FILES / "imagemagick-lzw.pdf").read_bytes(), 422, "no text layer"),
        ("cut.pdf", (FILES / "multicolumn.pdf").read_bytes()[:9000], 422, "damaged"),
        ("paper.docx", (FILES / "multicolumn.pdf").read_bytes(), 415, "bytes are PDF"),
        ("long.pdf", (FILES / "pdflatex-4-pages.pdf").read_bytes(), 413, "limit is 3"),
        ("photo.pdf", b"\x89PNG\r\n\x1a\n" + bytes(64), 415, "image/png"),
        (
            "empty.html",
            b"<!doctype html><html><body><nav>Home</nav></body></html>",
            422,
            "no main text",
        ),
    ],
)
def test_an_unreadable_file_is_refused_and_nothing_is_written(
    client: TestClient[Any], name: str, data: bytes, status: int, says: str
) -> None:
    before = _ids(client)
    response = _upload(client, name, data)
    assert response.status_code == status, response.text
    assert says in response.json()["detail"]
    assert _ids(client) == before


def test_a_bad_metadata_field_is_a_400_naming_it(client: TestClient[Any]) -> None:
    data = (FILES / "article.html").read_bytes()
    response = _upload(client, "news.html", data, metadata=json.dumps(["not", "an", "object"]))
    assert response.status_code == 400 and "metadata" in response.json()["detail"]


def test_a_deleted_documents_file_is_removed_once_no_write_can_still_need_it(
    client: TestClient[Any], settings: Any
) -> None:
    import os
    import time

    kept = settings.index_dir / "originals"
    assert _upload(client, "paper.pdf", (FILES / "multicolumn.pdf").read_bytes()).status_code == 201
    assert _upload(client, "news.html", (FILES / "article.html").read_bytes()).status_code == 201
    (pdf,) = kept.glob("*.pdf")
    (html,) = kept.glob("*.html")
    # A file kept minutes ago may belong to a write under way: it stays until it is older.
    assert client.delete("/v1/documents/news", headers=ADMIN).status_code == 200
    assert html.exists()
    old = time.time() - 3600
    os.utime(html, (old, old))
    os.utime(pdf, (old, old))
    # The next delete removes every file no document names any more.
    assert client.delete("/v1/documents/paper", headers=ADMIN).status_code == 200
    assert not html.exists() and not pdf.exists()
