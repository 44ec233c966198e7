"""Collections and keys that see only their own: a doc_id is unique within its collection, and
a key from ``CITEQA_KEYS_FILE`` sees, cites, lists and counts only its collections, on every
route; what lies outside them answers exactly as what does not exist."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from pydantic import SecretStr
from structlog.testing import capture_logs

from service import KeysFileError, Settings, create_app
from tests.conftest import QueuedUpstream

Client = Callable[..., TestClient[Any]]
ADMIN = {"Authorization": "Bearer admin-1"}
HR = {"Authorization": "Bearer hr-reader-7f3a"}  # reads "hr"
SALES = {"Authorization": "Bearer sales-writer-91c2"}  # reads and writes "zsales"
HR_HANDBOOK = (
    "The holiday allowance is 30 days a year. Staff in Lyon may carry 5 days over. "
    "The handbook was revised in March."
)
SALES_HANDBOOK = (
    "The Zanzibar contract is worth 4 million euros. The Zanzibar buyer pays in March. "
    "The handbook of the sales team lists every buyer."
)
SECRETS = ("zanzibar", "zsales", "4 million")  # what no reply to the hr key may hold


def _keys_file(path: Path, entries: list[dict[str, Any]]) -> Path:
    keys = [{"key_sha256": hashlib.sha256(e.pop("key").encode()).hexdigest(), **e} for e in entries]
    path.write_text(json.dumps({"keys": keys}), encoding="utf-8")
    return path


@pytest.fixture
def keys_path(tmp_path: Path) -> Path:
    return _keys_file(
        tmp_path / "keys.json",
        [
            {"key": "hr-reader-7f3a", "collections": ["hr"]},
            {"key": "sales-writer-91c2", "collections": ["zsales"], "write": True},
            {"key": "both-writer-0d4e", "collections": ["hr", "zsales"], "write": True},
        ],
    )


@pytest.fixture
def client(make_client: Client, keys_path: Path) -> TestClient[Any]:
    client = make_client(admin_keys=SecretStr("admin-1"), keys_file=keys_path)
    for collection, doc_id, text in (
        ("hr", "handbook", HR_HANDBOOK),
        ("zsales", "handbook", SALES_HANDBOOK),
        ("zsales", "zanzibar-deal", SALES_HANDBOOK.replace("4 million", "5 million")),
    ):
        body = {"doc_id": doc_id, "text": text, "collection": collection}
        added = client.post("/v1/documents", json=body, headers=ADMIN)
        assert added.status_code == 201, added.text
        assert added.json()["documents"][0]["collection"] == collection
    return client


def _leaks(response: httpx.Response) -> list[str]:
    seen = (response.text + json.dumps(dict(response.headers))).lower()
    return [secret for secret in SECRETS if secret in seen]


def _same_as_absent(client: TestClient[Any], method: str, url: str, **kw: Any) -> None:
    """``url`` (naming zsales) answers as the same request naming a collection not there."""
    hidden = client.request(method, url, **kw)
    absent = client.request(method, url.replace("zsales", "nope"), **kw.copy())
    assert hidden.status_code == absent.status_code == 404, (url, hidden.text)
    assert hidden.json()["detail"].replace("zsales", "nope") == absent.json()["detail"]
    assert hidden.headers.keys() == absent.headers.keys()


def test_one_doc_id_in_two_collections_is_two_documents(client: TestClient[Any]) -> None:
    listed = client.get("/v1/documents", headers=ADMIN).json()["documents"]
    handbooks = sorted(d["collection"] for d in listed if d["doc_id"] == "handbook")
    assert handbooks == ["hr", "zsales"]
    assert {d["collection"] for d in listed} == {"default", "hr", "zsales"}
    hr = client.get("/v1/documents/handbook?collection=hr", headers=ADMIN).json()
    assert hr["text"] == HR_HANDBOOK and hr["collection"] == "hr"
    sales = client.get("/v1/documents/handbook?collection=zsales", headers=ADMIN).json()
    assert sales["text"] == SALES_HANDBOOK
    # The admin key reads every collection, so a bare id means the default one.
    assert client.get("/v1/documents/handbook", headers=ADMIN).status_code == 404
    only = client.get("/v1/documents?collection=hr", headers=ADMIN).json()["documents"]
    assert [(d["collection"], d["doc_id"]) for d in only] == [("hr", "handbook")]

    deleted = client.delete("/v1/documents/handbook?collection=zsales", headers=ADMIN)
    assert deleted.json() == {"deleted": "handbook", "collection": "zsales"}
    assert client.get("/v1/documents/handbook?collection=hr", headers=ADMIN).status_code == 200

    cited = client.post("/v1/ask", headers=ADMIN, json={
        "question": "How many days of holiday allowance?", "answer_mode": "extractive",
        "collections": ["hr"],
    }).json()  # fmt: skip
    assert {(c["collection"], c["doc_id"]) for c in cited["citations"]} == {("hr", "handbook")}


def test_a_key_sees_only_its_collections_on_every_route(
    client: TestClient[Any], upstream: QueuedUpstream
) -> None:
    ask = {"question": "What is the Zanzibar contract worth?", "answer_mode": "extractive"}
    replies = [
        client.get("/v1/models", headers=HR),
        client.get("/v1/documents", headers=HR),
        client.get("/v1/documents?collection=zsales", headers=HR),
        client.get("/v1/documents/handbook", headers=HR),
        client.post("/v1/ask", headers=HR, json=ask),
        client.post("/v1/ask", headers=HR, json=ask | {"stream": True}),
        client.post("/v1/ask", headers=HR, json=ask | {"filter": {"doc_ids": ["zanzibar-deal"]}}),
        client.post("/v1/search", headers=HR, json={"query": "Zanzibar contract", "top_k": 20}),
    ]
    assert [r.status_code for r in replies] == [200] * len(replies)
    assert [m["id"] for m in replies[0].json()["data"]] == ["citeqa", "citeqa/hr"]
    assert [(d["collection"], d["doc_id"]) for d in replies[1].json()["documents"]] == [
        ("hr", "handbook")
    ]
    assert replies[2].json() == {"documents": []}
    assert replies[3].json()["text"] == HR_HANDBOOK  # its one collection, by default
    assert {c["collection"] for c in replies[4].json()["citations"]} <= {"hr"}
    assert replies[6].json()["abstained_because"] == "no_documents_in_scope"
    assert {s["collection"] for s in replies[7].json()["sentences"]} == {"hr"}

    upstream.queue("NOT FOUND")
    chat = client.post(
        "/v1/chat/completions",
        headers=HR,
        json={
            "model": "citeqa",
            "messages": [
                {"role": "user", "content": "How many holiday days may staff in Lyon carry over?"}
            ],
        },
    )
    assert chat.status_code == 200, chat.text
    prompt = json.dumps(upstream.requests[-1]["messages"]).lower()
    assert "carry over" in prompt and "zanzibar" not in prompt  # the LLM sees hr alone
    replies.append(chat)
    assert {r.url.path: _leaks(r) for r in replies if _leaks(r)} == {}

    # Named, the other collection and its documents answer as what does not exist.
    for url in ("/v1/documents/handbook?collection=zsales",
                "/v1/documents/zanzibar-deal?collection=zsales",
                "/v1/documents/zanzibar-deal/pages/1?collection=zsales"):  # fmt: skip
        _same_as_absent(client, "GET", url, headers=HR)
    assert client.get("/v1/documents/renault-geely-mou?collection=default", headers=HR).json() == (
        client.get("/v1/documents/no-such-doc?collection=default", headers=HR).json()
        | {"detail": "no document with doc_id 'renault-geely-mou'"}
    )
    for model in ("citeqa/zsales", "citeqa/default"):
        hidden = client.post("/v1/chat/completions", headers=HR, json={
            "model": model, "messages": [{"role": "user", "content": "Who is the buyer?"}],
        })  # fmt: skip
        assert hidden.status_code == 404
        assert hidden.json()["error"]["message"] == f"The model {model!r} does not exist"
    scoped = [
        client.post("/v1/ask", headers=HR, json=ask | {"collections": [name]}).json()
        for name in ("zsales", "nope")
    ]
    for body in scoped:
        body.pop("timings_ms")
        assert body["abstained_because"] == "no_documents_in_scope"
    assert scoped[0] == scoped[1]
    for name in ("zsales", "nope"):
        search = client.post("/v1/search", headers=HR, json={"query": "Zanzibar contract",
                                                             "collections": [name]})  # fmt: skip
        assert search.status_code == 200
        assert search.json()["sentences"] == search.json()["passages"] == []

    # A reader's key writes nothing; the 403 says so whichever document it names.
    for method, url in (("POST", "/v1/documents?collection=hr"),
                        ("DELETE", "/v1/documents/handbook?collection=zsales")):  # fmt: skip
        denied = client.request(method, url, headers=HR, json={"text": "x"})
        assert denied.status_code == 403 and "may read but not write" in denied.text


def test_what_other_collections_hold_sways_no_score_a_key_sees(client: TestClient[Any]) -> None:
    """Term statistics are those of the key's collections: a score says nothing of the rest."""

    def seen() -> tuple[Any, ...]:
        search = client.post("/v1/search", headers=HR, json={"query": "holiday allowance days"})
        ask = client.post("/v1/ask", headers=HR, json={
            "question": "How many days is the holiday allowance?", "answer_mode": "extractive",
        }).json()  # fmt: skip
        return search.json()["sentences"], ask["citations"], ask["answer"]

    before = seen()
    assert before[0] and before[1]
    flood = " ".join(f"Holiday allowance day {n} is booked." for n in range(40))
    added = client.post("/v1/documents", headers=SALES, json={"doc_id": "rota", "text": flood})
    assert added.status_code == 201
    assert seen() == before
    # Asked of every collection (the admin key's corpus), the same sentences score otherwise.
    every = client.post("/v1/search", headers=ADMIN, json={
        "query": "holiday allowance days", "top_k": 20}).json()["sentences"]  # fmt: skip
    scores = {s["sentence_id"]: s["score"] for s in every}
    assert [scores.get(s["sentence_id"]) for s in before[0]] != [s["score"] for s in before[0]]


def test_a_writing_key_writes_and_counts_only_its_collections(client: TestClient[Any]) -> None:
    added = client.post("/v1/documents", headers=SALES,
                        json={"doc_id": "leads", "text": "The Oslo lead is warm."})  # fmt: skip
    assert added.status_code == 201, added.text
    assert added.json()["documents"][0]["collection"] == "zsales"  # its one collection
    # The totals count zsales alone: its two documents and the new one.
    assert added.json()["total_documents"] == 3
    listed = client.get("/v1/documents", headers=SALES).json()["documents"]
    assert added.json()["total_sentences"] == sum(d["sentences"] for d in listed)

    into_hr = {"doc_id": "memo", "text": "The canteen opens at noon.", "collection": "hr"}
    hidden = client.post("/v1/documents", headers=SALES, json=into_hr)
    absent = client.post("/v1/documents", headers=SALES, json=into_hr | {"collection": "nope"})
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json()["detail"].replace("'hr'", "'nope'") == absent.json()["detail"]
    gone = client.delete("/v1/documents/handbook?collection=hr", headers=SALES)
    nothing = client.delete("/v1/documents/handbook?collection=nope", headers=SALES)
    assert gone.status_code == nothing.status_code == 404
    assert gone.json()["detail"].replace("'hr'", "'nope'") == nothing.json()["detail"]
    assert client.get("/v1/documents/handbook?collection=hr", headers=HR).status_code == 200
    assert client.delete("/v1/documents/handbook", headers=SALES).status_code == 200


def test_a_key_of_several_collections_names_the_one_it_means(client: TestClient[Any]) -> None:
    both = {"Authorization": "Bearer both-writer-0d4e"}
    batch = {"documents": [{"doc_id": "memo", "text": "The canteen opens at noon.",
                            "collection": "hr"},
                           {"doc_id": "memo", "text": "The Oslo lead is warm.",
                            "collection": "zsales"}]}  # fmt: skip
    added = client.post("/v1/documents", headers=both, json=batch)
    assert added.status_code == 201, added.text
    assert [d["collection"] for d in added.json()["documents"]] == ["hr", "zsales"]
    unnamed = client.post("/v1/documents", headers=both, json={"text": "The canteen is shut."})
    assert unnamed.status_code == 400 and "name its collection" in unnamed.text
    read = client.get("/v1/documents/memo", headers=both)
    assert read.status_code == 400 and "hr, zsales: name one with ?collection=" in read.text
    assert client.get("/v1/documents/memo?collection=zsales", headers=both).json()["text"] == (
        "The Oslo lead is warm."
    )


def test_keys_are_refused_unless_configured_and_the_file_is_read_again_when_it_changes(
    client: TestClient[Any], keys_path: Path
) -> None:
    for headers in ({}, {"Authorization": "Bearer hr-reader"}, {"Authorization": "hr-reader-7f3a"}):
        refused = client.get("/v1/documents", headers=headers)
        assert refused.status_code == 401 and "WWW-Authenticate" in refused.headers
    _keys_file(keys_path, [{"key": "hr-reader-7f3a", "collections": ["hr", "zsales"]}])
    models = client.get("/v1/models", headers=HR).json()["data"]
    assert [m["id"] for m in models] == ["citeqa", "citeqa/hr", "citeqa/zsales"]
    assert client.get("/v1/models", headers=SALES).status_code == 401  # no longer in the file

    keys_path.write_text('{"keys": [{"key_sha256": "not a hash"}]}', encoding="utf-8")
    models = client.get("/v1/models", headers=HR).json()["data"]  # the keys stay as they were
    assert [m["id"] for m in models] == ["citeqa", "citeqa/hr", "citeqa/zsales"]


def test_metrics_and_logs_carry_the_collection_never_the_key(client: TestClient[Any]) -> None:
    with capture_logs() as logs:
        asked = client.post("/v1/ask", headers=HR, json={
            "question": "How many days of holiday allowance?", "answer_mode": "extractive",
        })  # fmt: skip
    assert asked.status_code == 200
    (event,) = [e for e in logs if e["event"] == "request"]
    assert event["key_collections"] == ["hr"]
    # /metrics counts and names every collection: a key of some sees none of it.
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=HR).status_code == 403
    metrics = client.get("/metrics", headers=ADMIN).text
    assert re.search(r'citeqa_answers_total\{[^}]*collection="hr"[^}]*\} [1-9]', metrics)
    for secret in ("hr-reader-7f3a", "sales-writer-91c2", "admin-1"):
        assert secret not in metrics and secret not in repr(logs)
    ready = client.get("/readyz").json()  # takes no key: counts and names no document
    assert "documents" not in ready["index"] and "segments" not in ready["index"]


def test_a_keys_file_that_cannot_be_read_stops_the_start(tmp_path: Path) -> None:
    plain = tmp_path / "keys.json"
    plain.write_text('{"keys": [{"key_sha256": "hr-reader-7f3a"}]}', encoding="utf-8")
    for path in (plain, tmp_path / "missing.json"):
        with pytest.raises(KeysFileError, match="CITEQA_KEYS_FILE"):
            create_app(Settings(keys_file=path, index_dir=tmp_path / "index"))


def test_sighup_reads_the_keys_file_again(tmp_path: Path) -> None:
    """A real ``citeqa serve``: a file changed with its size and time kept is read on SIGHUP."""
    keys = _keys_file(tmp_path / "keys.json", [{"key": "old-key-1", "collections": ["hr"]}])
    port = _free_port()
    env = {
        **os.environ,
        "CITEQA_INDEX_DIR": str(tmp_path / "index"),
        "CITEQA_KEYS_FILE": str(keys),
        "CITEQA_LLM_BASE_URL": "http://127.0.0.1:9/v1",  # nothing there
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        cwd=Path(__file__).resolve().parents[2], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1/models"
    new = {"Authorization": "Bearer new-key-2"}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/livez", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        assert httpx.get(url, headers=new).status_code == 401
        stat = keys.stat()
        _keys_file(keys, [{"key": "new-key-2", "collections": ["hr"]}])
        os.utime(keys, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # looks unchanged
        assert keys.stat().st_size == stat.st_size
        assert httpx.get(url, headers=new).status_code == 401
        server.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        # Known now: a 503 while the service loads, a 200 once it has.
        assert httpx.get(url, headers=new).status_code in (200, 503)
        assert httpx.get(url, headers={"Authorization": "Bearer old-key-1"}).status_code == 401
        assert server.poll() is None  # SIGHUP did not stop it
    finally:
        server.terminate()
        server.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
