"""Throughput under concurrent clients, with and without dynamic batching of query embeddings.

    .venv/bin/python benchmarks/concurrency.py [--seconds 6] [--out FILE.md]

The real app (MiniLM, the bundled article's index, no LLM) is served by uvicorn on loopback,
once with ``CITEQA_EMBED_MAX_BATCH=0`` (each query encoded on its own, as before) and once
with batching (64), in the same run. 1, 8 and 50 clients each send requests back to back for
``--seconds``: ``POST /v1/search`` and ``POST /v1/ask`` in extractive mode. Printed: requests
per second, p50 and p95 latency, errors, and the batched/unbatched throughput ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from service import Runtime, Settings, create_app, load_runtime

QUESTIONS = [
    "Which platform underpins the Korean models?",
    "How many employees does Renault group have?",
    "What will the two sides share?",
    "Where will the hybrid models be sold?",
    "What is Geely's annual revenue?",
    "When will Renault group be carbon neutral in Europe?",
]


def _serve(settings: Settings) -> tuple[str, uvicorn.Server]:
    async def loader(s: Settings) -> Runtime:
        return await load_runtime(s, with_llm=False)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, loader=loader), port=port, log_config=None, access_log=False
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/readyz").status_code == 200:
                return base, server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not become ready")


async def _load(base: str, path: str, clients: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds

    async def client(n: int, http: httpx.AsyncClient) -> None:
        nonlocal errors
        i = n
        while time.monotonic() < stop:
            question = QUESTIONS[i % len(QUESTIONS)]
            body = (
                {"query": question, "top_k": 5}
                if path == "/v1/search"
                else {"question": question, "answer_mode": "extractive"}
            )
            started = time.perf_counter()
            response = await http.post(base + path, json=body)
            latencies.append((time.perf_counter() - started) * 1000)
            errors += response.status_code != 200
            i += 1

    limits = httpx.Limits(max_connections=clients + 5)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(n, http) for n in range(clients)))
        elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "rps": round(len(latencies) / elapsed, 1),
        "p50": round(statistics.median(ordered), 1),
        "p95": round(ordered[round(0.95 * (len(ordered) - 1))], 1),
        "errors": errors,
    }


def main(seconds: float, out: Path | None) -> None:
    """Measure both settings at each load and print the comparison."""
    results: dict[tuple[str, int, int], dict[str, float]] = {}
    for batch in (0, 64):
        settings = Settings(embed_max_batch=batch, rate_limit_per_minute=0)
        base, server = _serve(settings)
        for path in ("/v1/search", "/v1/ask"):
            asyncio.run(_load(base, path, 4, 1.0))  # warm the threads and caches
            for clients in (1, 8, 50):
                results[(path, clients, batch)] = asyncio.run(_load(base, path, clients, seconds))
        server.should_exit = True
        time.sleep(1)
    lines = [
        "# Throughput under concurrent clients: query embeddings batched or not",
        "",
        "    .venv/bin/python benchmarks/concurrency.py --out benchmarks/results/concurrency.md",
        "",
        f"Each cell: {seconds:.0f} s of back-to-back requests; the same run, the same machine.",
        "",
        "| route | clients | one encode each: req/s, p50, p95 ms | batched: req/s, p50, p95 ms "
        "| errors | batched/one each, req/s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for path in ("/v1/search", "/v1/ask"):
        for clients in (1, 8, 50):
            a, b = results[(path, clients, 0)], results[(path, clients, 64)]
            route = path + (" (extractive)" if path == "/v1/ask" else "")
            lines.append(
                f"| {route} | {clients} | {a['rps']}, {a['p50']}, {a['p95']} "
                f"| {b['rps']}, {b['p50']}, {b['p95']} | {int(a['errors'])}, {int(b['errors'])} "
                f"| {b['rps'] / a['rps']:.2f}x |"
            )
    report = "\n".join(lines)
    print(report)
    if out is not None:
        out.write_text(report + "\n", encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    main(args.seconds, args.out)
