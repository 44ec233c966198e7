"""The service over shards on Ray Serve: a local Ray, three shard deployments that follow
their index directories, and the Litestar front on a loopback port. One shard is then
stopped while questions run: answers go on from the others, degraded, never a 5xx."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from index import Document, build_index, read_documents, save_snapshot
from service import ServeShard, Settings, create_app, load_runtime, start_shards
from service.answering import shard_of
from tests.conftest import ARTICLE, ROOT, HashingEmbedder
from tests.loopback_upstream import run_in_thread

KOREA = "Which platform underpins the Korean models?"


def _corpus() -> list[Document]:
    (article,) = read_documents([ARTICLE])
    paragraphs = [p for p in article.text.split("\n\n") if p.strip()]
    docs = [Document(f"article-{i}", f"Article part {i}", p) for i, p in enumerate(paragraphs)]
    others = read_documents([ROOT / "tests" / "data" / "project-docs.jsonl"])
    return docs + [d for d in others if KOREA not in d.text]  # the docs quote the question


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServeShard]]:
    from ray import serve

    embedder = HashingEmbedder()
    parts: list[list[Document]] = [[], [], []]
    for doc in _corpus():
        parts[shard_of(doc.doc_id, 3)].append(doc)
    dirs = []
    for i, part in enumerate(parts):
        directory = tmp_path_factory.mktemp(f"shard{i}")
        save_snapshot(build_index(part, embedder), directory)
        dirs.append(directory)
    clients = start_shards(dirs, timeout_s=3.0, follow_interval_s=0.5)
    yield clients
    serve.shutdown()
    import ray

    ray.shutdown()


def _front(clients: list[ServeShard], tmp_path: Path) -> tuple[str, object]:
    settings = Settings(corpus=[ARTICLE], index_dir=tmp_path / "unused", read_only=True,
                        whole_corpus_chars=0, shard_timeout_s=3.0, follow_interval_s=0.5,
                        rate_limit_per_minute=0,  # the load below goes past 300 a minute
                        instruction_nearness=1.0)  # fmt: skip
    loader = functools.partial(load_runtime, embedder=HashingEmbedder(), with_llm=False,
                               shards=clients)  # fmt: skip
    base, stop = run_in_thread(create_app(settings, loader=loader))
    deadline = time.monotonic() + 30
    while httpx.get(base + "/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the sharded front did not become ready"
        time.sleep(0.1)
    return base, stop


def test_a_question_through_three_shards_then_one_shard_stopped_mid_load(
    shards: list[ServeShard], tmp_path: Path
) -> None:
    from ray import serve

    base, stop = _front(shards, tmp_path)
    try:
        ready = httpx.get(base + "/readyz").json()
        assert ready["status"] == "ready"
        assert ready["shards"]["serving"] == [s.name for s in shards]
        ask = {"question": KOREA, "answer_mode": "extractive"}
        body = httpx.post(base + "/v1/ask", json=ask, timeout=30).json()
        assert body["answerable"] and "CMA" in body["answer"] and not body["degraded"]
        (citation,) = body["citations"]
        # The documents are the shards': listed, and each readable with its offsets.
        listed = httpx.get(f"{base}/v1/documents").json()["documents"]
        assert len(listed) == len(_corpus()) and citation["doc_id"] in {d["doc_id"] for d in listed}
        detail = httpx.get(f"{base}/v1/documents/{citation['doc_id']}", timeout=10).json()
        assert detail["text"][citation["start"] : citation["end"]] == citation["text"]
        assert httpx.get(f"{base}/v1/documents/nothing-here").status_code == 404
        found = httpx.post(base + "/v1/search", json={"query": KOREA}, timeout=30).json()
        assert "CMA" in found["sentences"][0]["text"]
        assert httpx.post(base + "/v1/documents", json={"text": "x"}).status_code in (401, 403)

        # Questions keep coming while the shard that does not hold the answer is stopped.
        holder = citation["doc_id"]
        victim = next(s for s in shards if shard_of(holder, 3) != int(s.name.rsplit("-", 1)[1]))
        statuses: list[int] = []
        answers: list[dict[str, object]] = []
        done = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=base, timeout=30) as client:
                while not done.is_set():
                    response = client.post("/v1/ask", json=ask)
                    statuses.append(response.status_code)
                    answers.append(response.json())

        runner = threading.Thread(target=load)
        runner.start()
        time.sleep(0.5)
        serve.delete(victim.name)
        time.sleep(4)
        done.set()
        runner.join(60)
        bad = [(s, a) for s, a in zip(statuses, answers, strict=True) if s != 200]
        assert statuses and not bad, bad
        last = answers[-1]
        assert last["degraded"] and "CMA" in str(last["answer"])
        ready = httpx.get(base + "/readyz").json()
        assert ready["status"] == "degraded" and ready["shards"]["missing"] == [victim.name]
        metrics = httpx.get(base + "/metrics").text
        assert f'citeqa_shard_up{{shard="{victim.name}"}} 0.0' in metrics
    finally:
        stop()  # type: ignore[operator]
