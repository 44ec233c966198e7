"""The HTTP surface: validation, documents, search, health."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from pydantic import SecretStr

from service import Runtime, Settings, create_app
from tests.conftest import ARTICLE_TEXT, ARTICLE_TITLE, CMA

Client = Callable[..., TestClient[Any]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"question": ""}, "question"),
        ({"question": "x" * 2001}, "question"),
        ({"question": 42}, "question"),
        ({}, "question"),
        ({"question": "ok", "top_k": 0}, "top_k"),
        ({"question": "ok", "top_k": 21}, "top_k"),
        ({"question": "ok", "top_k": "five"}, "top_k"),
        ({"question": "ok", "answer_mode": "magic"}, "answer_mode"),
        ({"question": "ok", "topk": 3}, "topk"),
        ({"question": "ok", "top_k": "5"}, "top_k"),
        ({"question": "ok", "stream": 0}, "stream"),
        ({"question": "ok", "top_k": 5.5}, "top_k"),
    ],
)
def test_bad_ask_bodies_get_400_naming_the_field(
    make_client: Client, body: dict[str, Any], field: str
) -> None:
    response = make_client().post("/v1/ask", json=body)
    assert response.status_code == 400
    error = response.json()
    assert error["status_code"] == 400
    assert [e["key"] for e in error["extra"]] == [field], error


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[]", b'"question"', b'{"question": "a"'])
def test_malformed_json_gets_400(make_client: Client, raw: bytes) -> None:
    response = make_client().post(
        "/v1/ask", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["detail"]


@pytest.mark.parametrize("path", ["/v1/ask", "/v1/search", "/v1/chat/completions"])
@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"question": "\xff", "query": "\xff"}', "not UTF-8"),
        (b'{"question": ' + b"[" * 990 + b"]" * 990 + b"}", "nests too deeply"),
    ],
)
def test_bad_bytes_get_a_400_not_a_500(
    make_client: Client, path: str, raw: bytes, reason: str
) -> None:
    response = make_client().post(path, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    body = response.json()
    assert reason in (body["error"]["message"] if "error" in body else body["detail"])


def test_bad_search_body_gets_400(make_client: Client) -> None:
    response = make_client().post("/v1/search", json={"query": "", "top_k": 3})
    assert response.status_code == 400
    assert "query" in str(response.json()["extra"])


def test_documents_list_and_detail_carry_offsets(make_client: Client) -> None:
    client = make_client()
    listing = client.get("/v1/documents").json()["documents"]
    assert listing == [
        {"doc_id": "renault-geely-mou", "collection": "default", "title": ARTICLE_TITLE,
         "chars": len(ARTICLE_TEXT), "sentences": 17}
    ]  # fmt: skip
    detail = client.get("/v1/documents/renault-geely-mou").json()
    assert detail["text"] == ARTICLE_TEXT
    for s in detail["sentences"]:
        assert detail["text"][s["start"] : s["end"]] == s["text"]


def test_unknown_document_is_404(make_client: Client) -> None:
    response = make_client().get("/v1/documents/nope")
    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


def test_search_ranks_sentences_and_passages_with_offsets(make_client: Client) -> None:
    body = (
        make_client()
        .post("/v1/search", json={"query": "Lingke energy saving platform", "top_k": 3})
        .json()
    )
    assert len(body["sentences"]) == 3 and len(body["passages"]) <= 3
    assert CMA in body["sentences"][0]["text"]
    scores = [s["score"] for s in body["sentences"]]
    assert scores == sorted(scores, reverse=True)
    for hit in body["sentences"] + body["passages"]:
        assert ARTICLE_TEXT[hit["start"] : hit["end"]] == hit["text"]
    assert any(CMA in p["text"] for p in body["passages"])


def test_readyz_is_503_until_loaded_and_healthz_always_answers(settings: Settings) -> None:
    gate = threading.Event()

    async def slow_loader(s: Settings) -> Runtime:
        while not gate.is_set():
            await asyncio.sleep(0.01)
        raise RuntimeError("index exploded")

    with TestClient(create_app(settings, loader=slow_loader)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 503
        assert client.get("/readyz").json()["status"] == "loading"
        ask = client.post("/v1/ask", json={"question": "Anything?"})
        assert ask.status_code == 503 and ask.headers["retry-after"] == "10"
        assert "starting" in ask.json()["detail"]
        gate.set()
        for _ in range(500):
            if client.get("/readyz").json()["status"] == "failed":
                break
            time.sleep(0.01)
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json() == {"status": "failed", "detail": "index exploded"}
        failed = client.post("/v1/ask", json={"question": "Anything?"})
        assert failed.status_code == 503 and "retry-after" not in failed.headers  # no use


def test_readyz_names_a_failed_index_by_its_setting_not_its_path(
    settings: Settings, tmp_path: Path
) -> None:
    async def loader(s: Settings) -> Runtime:
        from service import IndexLoadError

        raise IndexLoadError(f"{s.index_dir.resolve()}: vectors.faiss is corrupt")

    with TestClient(create_app(settings, loader=loader)) as client:
        deadline = time.monotonic() + 5
        while client.get("/readyz").json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.01)
        body = client.get("/readyz").json()
    assert body == {"status": "failed", "detail": "<index_dir>: vectors.faiss is corrupt"}
    assert str(tmp_path) not in str(body)


def test_readyz_reports_what_is_loaded(make_client: Client) -> None:
    body = make_client().get("/readyz").json()
    assert body["status"] == "ready"
    assert body["index"]["sentences"] == 17
    assert body["llm"] == "fake"


def test_openapi_schema_documents_bodies_errors_and_streams(make_client: Client) -> None:
    schema = make_client().get("/schema/openapi.json").json()
    paths, components = schema["paths"], schema["components"]["schemas"]
    ask = paths["/v1/ask"]["post"]["responses"]
    assert ask["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AskResponse"
    }
    assert "text/event-stream" in ask["200"]["content"]
    assert {"400", "401", "429", "502", "503"} <= set(ask)
    assert components["AskRequest"]["additionalProperties"] is False
    write = paths["/v1/documents"]["post"]
    assert {"400", "401", "403", "413", "507"} <= set(write["responses"])
    assert set(write["requestBody"]["content"]) == {
        "application/json", "text/plain", "text/markdown", "multipart/form-data"
    }  # fmt: skip
    assert "DocumentIn" in components
    chat_400 = paths["/v1/chat/completions"]["post"]["responses"]["400"]
    assert chat_400["content"]["application/json"]["schema"]["$ref"].endswith("OpenAIErrorBody")


def test_schemathesis_finds_no_5xx_and_no_undocumented_response(
    live_server: Callable[..., str], tmp_path: Path
) -> None:
    """Fuzz every operation from the OpenAPI schema against a live server."""
    base = live_server(admin_keys=SecretStr("admin-1"), rate_limit_per_minute=0)
    cli = Path(sys.executable).parent / "schemathesis"
    checks = "not_a_server_error,status_code_conformance,content_type_conformance,"
    checks += "response_schema_conformance"
    run = subprocess.run(
        [str(cli), "run", f"{base}/schema/openapi.json", "-H", "Authorization: Bearer admin-1",
         "--checks", checks, "--max-examples", "20", "--seed", "1", "--no-color"],
        capture_output=True, text=True, timeout=500, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:]
    assert "passed" in run.stdout


def test_the_playground_page_and_its_files_are_served_without_a_key(make_client: Client) -> None:
    client = make_client(api_keys=SecretStr("reader-key"))
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert 'src="/static/playground.js"' in page.text and "http" not in page.text  # no CDN
    script = client.get("/static/playground.js")
    assert script.status_code == 200 and "utf16Offsets" in script.text
    assert client.get("/v1/documents").status_code == 401  # the data still needs the key


def test_cors_is_off_by_default_and_allows_only_configured_origins(make_client: Client) -> None:
    preflight = {
        "Origin": "https://chat.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    closed = make_client().options("/v1/ask", headers=preflight)
    assert "access-control-allow-origin" not in closed.headers
    client = make_client(cors_origins="https://chat.example, https://other.example")
    allowed = client.options("/v1/ask", headers=preflight)
    assert allowed.headers["access-control-allow-origin"] == "https://chat.example"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    other = client.options("/v1/ask", headers={**preflight, "Origin": "https://evil.example"})
    assert other.headers.get("access-control-allow-origin") != "https://evil.example"
