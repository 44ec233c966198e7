"""Adding, replacing and deleting documents through the API; durability and concurrency."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import httpx
import pytest
from litestar.testing import TestClient
from pydantic import SecretStr

from index import MAX_SEGMENTS, load_or_build, load_snapshot, read_documents
from service import Settings
from tests.conftest import ARTICLE, ROOT, HashingEmbedder, QueuedUpstream, Scripted, fake_app

Client = Callable[..., TestClient[Any]]
ADMIN = {"Authorization": "Bearer admin-1"}
BATTERY = "Where are the batteries made?"


@pytest.fixture
def admin_client(make_client: Client) -> TestClient[Any]:
    return make_client(
        admin_keys=SecretStr("admin-1"),
        max_document_chars=5000,
        max_batch_documents=3,
        max_body_bytes=20_000,
    )


def _add(client: TestClient[Any], body: dict[str, Any], **kw: Any) -> httpx.Response:
    return client.post("/v1/documents", json=body, headers=ADMIN, **kw)


def _extractive(client: TestClient[Any], question: str) -> dict[str, Any]:
    body: dict[str, Any] = client.post(
        "/v1/ask", json={"question": question, "answer_mode": "extractive"}
    ).json()
    return body


def test_add_replace_and_delete_change_the_answers(admin_client: TestClient[Any]) -> None:
    assert _extractive(admin_client, BATTERY)["answerable"] is False
    added = _add(
        admin_client,
        {
            "doc_id": "plants",
            "title": "Plants",
            "text": "The batteries are made in Ningbo. The cars are not.",
        },
    )
    assert added.status_code == 201, added.text
    assert added.json()["documents"] == [
        {
            "doc_id": "plants",
            "title": "Plants",
            "sentences": 2,
            "chunks": 1,
            "replaced": False,
            "collection": "default",
        }
    ]
    answer = _extractive(admin_client, BATTERY)
    assert answer["citations"][0]["doc_id"] == "plants" and "Ningbo" in answer["answer"]

    replaced = _add(admin_client, {"doc_id": "plants", "text": "The batteries are made in Xi'an."})
    assert replaced.json()["documents"][0]["replaced"] is True
    answer = _extractive(admin_client, BATTERY)
    assert "Xi'an" in answer["answer"] and "Ningbo" not in answer["answer"]
    doc = admin_client.get("/v1/documents/plants").json()
    assert doc["text"] == "The batteries are made in Xi'an."

    deleted = admin_client.delete("/v1/documents/plants", headers=ADMIN)
    assert deleted.status_code == 200 and deleted.json() == {
        "deleted": "plants",
        "collection": "default",
    }
    assert admin_client.get("/v1/documents/plants").status_code == 404
    assert _extractive(admin_client, BATTERY)["answerable"] is False
    assert admin_client.delete("/v1/documents/plants", headers=ADMIN).status_code == 404


def test_batches_markdown_uploads_and_derived_ids(admin_client: TestClient[Any]) -> None:
    batch = _add(
        admin_client,
        {"documents": [{"text": "First doc here."}, {"doc_id": "b", "text": "Second doc."}]},
    )
    assert batch.status_code == 201
    ids = [d["doc_id"] for d in batch.json()["documents"]]
    assert ids[0].startswith("doc-") and ids[1] == "b"
    upload = admin_client.post(
        "/v1/documents?doc_id=notes&title=Notes",
        content=b"# Notes\n\nThe plant opens in May.",
        headers={**ADMIN, "content-type": "text/markdown"},
    )
    assert upload.status_code == 201, upload.text
    listing = {d["doc_id"]: d for d in admin_client.get("/v1/documents").json()["documents"]}
    assert listing["notes"]["title"] == "Notes" and {ids[0], "b"} <= set(listing)
    titled = admin_client.post(
        "/v1/documents?doc_id=guide",
        content=b"Intro line.\n\n#not a heading\n\n# Assembly  Guide ##\n\nStep one.\n\n# Later",
        headers={**ADMIN, "content-type": "text/markdown"},
    )
    assert titled.json()["documents"][0]["title"] == "Assembly Guide"


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        ({"text": "x" * 5001}, {}, 413, "limit is 5000"),
        ({"documents": [{"text": "a"}] * 4}, {}, 413, "limit is 3"),
        ({"text": "   \n "}, {}, 400, "text is empty"),
        ({"text": "bin\x00ary\x01\x02"}, {}, 400, "not text"),
        ({"doc_id": "../etc", "text": "x"}, {}, 400, "doc_id"),
        ({"text": "x", "colour": "red"}, {}, 400, "colour"),
        (
            {"documents": [{"doc_id": "a", "text": "x"}, {"doc_id": "a", "text": "y"}]},
            {},
            400,
            "same doc_id",
        ),
    ],
)
def test_bad_documents_are_rejected_with_a_reason(
    admin_client: TestClient[Any],
    body: dict[str, Any],
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    response = _add(admin_client, body)
    assert response.status_code == status
    assert message in response.json()["detail"]


def test_oversized_bodies_and_non_text_uploads_are_rejected(admin_client: TestClient[Any]) -> None:
    big = admin_client.post(
        "/v1/documents", content=b"a" * 30_000, headers={**ADMIN, "content-type": "text/plain"}
    )
    assert big.status_code == 413
    latin = admin_client.post(
        "/v1/documents", content=b"caf\xe9", headers={**ADMIN, "content-type": "text/plain"}
    )
    assert latin.status_code == 400 and "UTF-8" in latin.json()["detail"]
    pdf = admin_client.post(
        "/v1/documents", content=b"%PDF-1.4", headers={**ADMIN, "content-type": "application/pdf"}
    )
    assert pdf.status_code == 400 and "malformed JSON" in pdf.json()["detail"]
    form = admin_client.post(  # what `curl -d` sends: JSON declared as a form
        "/v1/documents",
        content=b'{"doc_id": "notes", "text": "The plant opens in May."}',
        headers={**ADMIN, "content-type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 201 and form.json()["documents"][0]["doc_id"] == "notes"


def test_writes_need_an_admin_key_and_are_off_without_one(make_client: Client) -> None:
    closed = make_client()
    off = closed.post("/v1/documents", json={"text": "x"}, headers=ADMIN)
    assert off.status_code == 403 and "CITEQA_ADMIN_KEYS" in off.json()["detail"]
    guarded = make_client(admin_keys=SecretStr("admin-1"), api_keys=SecretStr("reader-1"))
    anonymous = guarded.post("/v1/documents", json={"text": "x"})
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="citeqa"'
    reader = {"Authorization": "Bearer reader-1"}
    refused = guarded.post("/v1/documents", json={"text": "x"}, headers=reader)
    assert refused.status_code == 403 and "may read but not write" in refused.json()["detail"]
    wrong = {"Authorization": "Bearer nope"}
    assert guarded.post("/v1/documents", json={"text": "x"}, headers=wrong).status_code == 401
    assert guarded.delete("/v1/documents/renault-geely-mou", headers=wrong).status_code == 401
    assert guarded.post("/v1/documents", json={"text": "x"}, headers=ADMIN).status_code == 201


def test_a_restart_keeps_every_acknowledged_document(
    settings: Settings, hashing_embedder: HashingEmbedder, upstream: QueuedUpstream
) -> None:
    app_settings = settings.model_copy(update={"admin_keys": SecretStr("admin-1")})
    with TestClient(fake_app(app_settings, hashing_embedder, upstream)) as client:
        _wait(client)
        for n in range(3):
            assert (
                _add(client, {"doc_id": f"d{n}", "text": f"Fact number {n} is here."}).status_code
                == 201
            )
        client.delete("/v1/documents/d1", headers=ADMIN)
    with TestClient(fake_app(app_settings, hashing_embedder, upstream)) as client:
        _wait(client)
        ids = {d["doc_id"] for d in client.get("/v1/documents").json()["documents"]}
    assert ids == {"renault-geely-mou", "d0", "d2"}


def _wait(client: TestClient[Any]) -> None:
    for _ in range(500):
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.01)
    raise AssertionError("not ready")


def test_queries_during_ingestion_see_no_errors(admin_client: TestClient[Any]) -> None:
    failures: list[str] = []
    stop = threading.Event()

    def query() -> None:
        while not stop.is_set():
            r = admin_client.post("/v1/search", json={"query": "batteries plant", "top_k": 3})
            if r.status_code != 200:
                failures.append(r.text)
            r = admin_client.post(
                "/v1/ask", json={"question": BATTERY, "answer_mode": "extractive"}
            )
            if r.status_code != 200:
                failures.append(r.text)

    readers = [threading.Thread(target=query) for _ in range(3)]
    for t in readers:
        t.start()
    for n in range(8):
        assert (
            _add(
                admin_client,
                {
                    "doc_id": f"plant{n}",
                    "text": f"The batteries for line {n} are made in plant {n}.",
                },
            ).status_code
            == 201
        )
    stop.set()
    for t in readers:
        t.join()
    assert failures == []
    assert len(admin_client.get("/v1/documents").json()["documents"]) == 9


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_acknowledged_write_survives_kill_9(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_server", str(tmp_path), str(port), "admin-1"],
        cwd=ROOT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(base)
        response = httpx.post(
            base + "/v1/documents",
            headers=ADMIN,
            json={"doc_id": "kept", "text": "This write was acknowledged."},
        )
        assert response.status_code == 201
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert "kept" in load_snapshot(tmp_path).documents


CRASH_MID_WRITE = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from index import Document, load_or_build, read_documents, save_snapshot, update_index
    from tests.conftest import ARTICLE, HashingEmbedder

    directory = Path(sys.argv[1])
    embedder = HashingEmbedder()
    index = load_or_build(directory, read_documents([ARTICLE]), embedder)
    new = update_index(index, embedder, upserts=[Document("lost", "Lost", "Never made it.")])

    def hang(*args):  # the moment before the snapshot becomes current
        print("switching", flush=True)
        time.sleep(60)

    os.replace = hang  # only the switch of CURRENT renames with os.replace
    save_snapshot(new, directory)
    """
)


def test_a_crash_mid_write_leaves_the_last_good_snapshot(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASH_MID_WRITE, str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "switching"
    proc.kill()
    proc.wait()
    proc.stdout.close()
    index = load_snapshot(tmp_path)
    assert set(index.documents) == {"renault-geely-mou"}
    assert len(list((tmp_path / "snapshots").iterdir())) == 2  # the orphan waits for cleanup
    load_or_build(tmp_path, read_documents([ARTICLE]), HashingEmbedder())
    assert len(list((tmp_path / "snapshots").iterdir())) == 1


def test_a_write_that_fails_unexplained_on_a_nearly_full_disk_is_507_else_500(
    admin_client: TestClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fails(index: object, path: str) -> None:  # as FAISS says it: no errno
        raise RuntimeError("Error in faiss::FileIOWriter: write failed")

    monkeypatch.setattr(faiss, "write_index", fails)
    free = {"bytes": 10**12}
    real_usage = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real_usage(p)._replace(free=free["bytes"]))
    roomy = _add(admin_client, {"doc_id": "memo", "text": "The plant opens in May."})
    assert roomy.status_code == 500 and "could not be written" in roomy.json()["detail"]
    free["bytes"] = 300_000
    full = _add(admin_client, {"doc_id": "memo", "text": "The plant opens in May."})
    assert full.status_code == 507 and "nothing was changed" in full.json()["detail"]
    assert "memo" not in _ids(admin_client)


def test_a_full_disk_gives_507_leaves_nothing_behind_and_later_writes_work(
    admin_client: TestClient[Any], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(index: object, path: str) -> None:
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(faiss, "write_index", full)
    response = _add(admin_client, {"doc_id": "memo", "text": "The plant opens in May."})
    assert response.status_code == 507
    assert "No space left on device" in response.json()["detail"]
    assert str(settings.index_dir) not in response.text
    snapshots, segments = settings.index_dir / "snapshots", settings.index_dir / "segments"
    assert [p.name for p in snapshots.iterdir() if p.name.startswith(".")] == []
    assert len(list(segments.iterdir())) == 1  # the half-written segment is gone
    assert "memo" not in _ids(admin_client)
    monkeypatch.undo()
    assert (
        _add(admin_client, {"doc_id": "memo", "text": "The plant opens in May."}).status_code == 201
    )
    assert "memo" in admin_client.get("/v1/documents").text
    assert len(list(snapshots.iterdir())) == 1


def test_segments_are_merged_in_the_background_and_nothing_is_lost(
    admin_client: TestClient[Any], settings: Settings
) -> None:
    names = [
        "Alder",
        "Birch",
        "Cedar",
        "Daisy",
        "Elm",
        "Fern",
        "Gorse",
        "Hazel",
        "Iris",
        "Juniper",
        "Kale",
        "Larch",
    ]
    assert len(names) > MAX_SEGMENTS
    for name in names:  # a segment per write
        body = {"doc_id": name, "text": f"The {name} plant is in Ningbo. It opens in May."}
        assert _add(admin_client, body).status_code == 201
    assert admin_client.delete("/v1/documents/Cedar", headers=ADMIN).status_code == 200
    _until(lambda: len(load_snapshot(settings.index_dir).segments) <= MAX_SEGMENTS)
    index = load_snapshot(settings.index_dir)
    listed = {d["doc_id"] for d in admin_client.get("/v1/documents").json()["documents"]}
    assert listed == set(index.documents) == {"renault-geely-mou", *names} - {"Cedar"}
    answer = _extractive(admin_client, "Where is the Hazel plant?")["answer"]
    assert answer.startswith("The Hazel plant is in Ningbo")


def test_multipart_file_uploads(admin_client: TestClient[Any]) -> None:
    files = [
        (
            "file",
            ("Plant Notes.md", b"# Plant\n\nThe batteries are made in Ningbo.", "text/markdown"),
        ),
        ("file", ("faq.txt", b"Deliveries start in May.", "text/plain")),
    ]
    response = admin_client.post("/v1/documents", files=files, headers=ADMIN)
    assert response.status_code == 201, response.text
    documents = response.json()["documents"]
    assert [(d["doc_id"], d["title"]) for d in documents] == [
        ("Plant-Notes", "Plant"),  # a markdown file is titled by its first # heading
        ("faq", "faq"),
    ]
    assert "Ningbo" in _extractive(admin_client, BATTERY)["answer"]
    pdf = admin_client.post(
        "/v1/documents", files=[("file", ("a.pdf", b"%PDF", "application/pdf"))], headers=ADMIN
    )
    assert pdf.status_code == 415 and "the bytes are TEXT" in pdf.json()["detail"]


def test_a_burst_of_writes_rewarms_the_llm_once_with_the_final_corpus(
    admin_client: TestClient[Any], upstream: QueuedUpstream
) -> None:
    def warmups() -> list[str]:
        return [
            r["messages"][0]["content"]
            for r in upstream.requests
            if "warm-up" in r["messages"][-1]["content"]
        ]

    before = len(warmups())
    for n in range(5):
        assert (
            _add(admin_client, {"doc_id": f"memo-{n}", "text": f"Plant {n} opens."}).status_code
            == 201
        )
    deadline = time.monotonic() + 10
    while len(warmups()) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # a second re-warm, if any, would have started by now
    after = warmups()[before:]
    assert len(after) == 1, len(after)
    assert "Plant 4 opens." in after[0]  # the corpus as the burst left it


def test_the_re_warm_waits_for_the_question_in_flight(
    admin_client: TestClient[Any], upstream: QueuedUpstream
) -> None:
    def warmups() -> int:
        return sum("warm-up" in r["messages"][-1]["content"] for r in upstream.requests)

    before = warmups()
    upstream.token_delay = 0.3
    upstream.queue(Scripted.dripped("NOT FOUND", 1))  # nine slow tokens: about 3 s
    question = {"question": "Which platform underpins the Korean models?"}
    answer = threading.Thread(target=lambda: admin_client.post("/v1/ask", json=question))
    answer.start()
    time.sleep(0.3)  # the answer's call to the LLM is running
    assert _add(admin_client, {"doc_id": "memo", "text": "Plant opens."}).status_code == 201
    time.sleep(1.5)  # past the settling time of the re-warm
    assert answer.is_alive() and warmups() == before  # no warm-up beside the question
    answer.join(timeout=10)
    deadline = time.monotonic() + 5
    while warmups() == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert warmups() == before + 1  # then, once the LLM is idle, one warm-up


def test_a_read_only_replica_follows_the_writer_and_refuses_writes(tmp_path: Path) -> None:
    writer_port, reader_port = _free_port(), _free_port()
    env = {**os.environ, "CITEQA_READ_ONLY": "true", "CITEQA_FOLLOW_INTERVAL_S": "0.2"}
    command = [sys.executable, "-m", "tests.fake_server", str(tmp_path)]
    root = ROOT
    writer = subprocess.Popen([*command, str(writer_port), "admin-1"], cwd=root)
    reader = None
    try:
        writer_base = f"http://127.0.0.1:{writer_port}"
        _wait_for(writer_base)
        reader = subprocess.Popen([*command, str(reader_port), "admin-1"], cwd=root, env=env)
        reader_base = f"http://127.0.0.1:{reader_port}"
        _wait_for(reader_base)

        def on_reader() -> set[str]:
            documents = httpx.get(reader_base + "/v1/documents").json()["documents"]
            return {d["doc_id"] for d in documents}

        assert on_reader() == {"renault-geely-mou"}
        _until(lambda: (tmp_path / "leases").is_dir() and any((tmp_path / "leases").iterdir()))
        (lease,) = (tmp_path / "leases").iterdir()  # the snapshot it serves is held for it
        assert lease.read_text() == (tmp_path / "CURRENT").read_text().strip()
        added = httpx.post(
            writer_base + "/v1/documents",
            json={"doc_id": "memo", "text": "The plant opens in May."},
            headers=ADMIN,
        )
        assert added.status_code == 201
        _until(lambda: "memo" in on_reader())
        refused = httpx.post(reader_base + "/v1/documents", json={"text": "Nope."}, headers=ADMIN)
        assert refused.status_code == 403 and "read-only" in refused.json()["detail"]
        assert httpx.delete(writer_base + "/v1/documents/memo", headers=ADMIN).status_code == 200
        _until(lambda: "memo" not in on_reader())
    finally:
        for proc in (writer, reader):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)


def _wait_for(base: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{base} did not become ready")


def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the replica did not follow in time"
        time.sleep(0.05)


def test_writes_that_arrive_together_share_one_update_and_one_snapshot(
    admin_client: TestClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    saves: list[str] = []
    replace = os.replace

    def slow_switch(src: Any, dst: Any) -> None:
        if str(dst).endswith("CURRENT"):  # a snapshot made current
            saves.append(str(dst))
            time.sleep(0.3)  # a slow disk: the other writes queue meanwhile
        replace(src, dst)

    monkeypatch.setattr(os, "replace", slow_switch)
    statuses: list[int] = []

    def write(n: int) -> None:
        body = {"doc_id": f"memo-{n}", "text": f"Plant {n} opens in May."}
        statuses.append(_add(admin_client, body).status_code)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [201] * 8
    listed = {d["doc_id"] for d in admin_client.get("/v1/documents").json()["documents"]}
    assert {f"memo-{n}" for n in range(8)} <= listed
    assert len(saves) < 8, saves  # batched: fewer snapshots than writes


def _ids(client: TestClient[Any]) -> set[str]:
    """The ids of the documents the service lists."""
    return {d["doc_id"] for d in client.get("/v1/documents").json()["documents"]}
