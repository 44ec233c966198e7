"""Probes, metrics and the playground page: what an operator and a first-time visitor see."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from litestar import Controller, MediaType, Response, get
from litestar.datastructures import State
from litestar.plugins.prometheus import PrometheusController

from service.errors import NotReadyError
from service.http.guards import require_every_collection

__all__ = ["STATIC", "HealthController", "Metrics", "playground"]

STATIC = Path(__file__).parents[1] / "static"
# What /readyz leaves out of the manifest when keys are configured: counts, and segments
# (which name deleted documents).
_COUNTS = ("documents", "sentences", "chunks", "segments", "corpus_checksum", "seed_checksum")
# The page loads only its own files and talks only to this server; a PDF page it fetched
# is shown from a blob: URL.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}


@get("/", include_in_schema=False, sync_to_thread=False)
def playground() -> Response[bytes]:
    """The playground page: ask, and see each cited sentence lit up in its document."""
    page = (STATIC / "index.html").read_bytes()
    return Response(page, media_type=MediaType.HTML, headers=_PAGE_HEADERS)


class HealthController(Controller):
    """Liveness and readiness."""

    tags = ["health"]  # noqa: RUF012 (Litestar reads it as a class attribute)

    @get(["/healthz", "/livez"], sync_to_thread=False)
    def healthz(self) -> dict[str, str]:
        """Liveness: the process answers (``/livez`` is the same probe)."""
        return {"status": "ok"}

    @get("/readyz", sync_to_thread=False)
    def readyz(self, state: State) -> Response[dict[str, Any]]:
        """Readiness: 200 once the index and the LLM are loaded, else 503."""
        life = state.life
        if life.runtime is None:
            status = "failed" if life.failure else "loading"
            body: dict[str, Any] = {"status": status}
            if life.failure:
                body["detail"] = life.failure
            # As the API's 503s while loading; a failed load needs an operator, not a retry.
            headers = {} if life.failure else {"Retry-After": str(NotReadyError().retry_after_s)}
            return Response(body, status_code=503, headers=headers)
        runtime = life.runtime
        shards = runtime.answerer.shards
        # Over shards the front holds no index of its own: the shards do. With keys, the
        # probe, which takes none, counts no documents and names none.
        private = state.key_ring.reads_need_key
        index = None if shards else msgspec.to_builtins(runtime.answerer.index.manifest)
        if index is not None and private:
            index = {k: v for k, v in index.items() if k not in _COUNTS}
        body = {
            "status": "degraded" if shards and shards.missing else "ready",
            "index": index,
            "llm": runtime.llm.name if runtime.llm else None,
            "embedded_llm": runtime.embedded is not None,
            "load_ms": runtime.timings_ms,
        }
        if shards is not None:
            # Answers go on without a missing shard, marked degraded; the probe says which.
            body["shards"] = {
                "serving": sorted(set(shards.clients) - shards.missing),
                "missing": sorted(shards.missing),
            }
            if not private:
                body["shards"] |= {"documents": len(shards.listing), "sentences": shards.sentences}
        return Response(body)


class Metrics(PrometheusController):
    """``GET /metrics`` in the Prometheus text format; not part of the API's schema."""

    include_in_schema = False
    guards = (require_every_collection,)
