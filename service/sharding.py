"""Shards on Ray Serve: one deployment per index directory, reached through its handle.

Each shard deployment serves one index directory read-only and follows its ``CURRENT`` as
``citeqa serve --read-only`` does. The Litestar app stays the HTTP front: it reaches the
shards through Ray Serve deployment handles (``ServeShard``) and runs the answering
pipeline over what they return (``service/answering/shards.py``). Serve's own HTTP proxy
is not started.

Optional: ``pip install 'citeqa[ray]'``; Ray is imported only when shards are started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from index import (
    Bm25Statistics,
    IndexFormatError,
    current_snapshot,
    hold_snapshots,
    load_snapshot,
    release_snapshots,
)
from service.answering import FetchedDocument, ShardFinds, ShardReader, ShardSummary

__all__ = ["ServeShard", "ShardReplica", "start_shards"]

log = logging.getLogger(__name__)


class ShardReplica:
    """One shard's index directory, loaded read-only and followed: a Serve replica's state."""

    def __init__(self, directory: str, name: str, follow_interval_s: float = 2.0) -> None:
        self.directory = Path(directory)
        self.name = name
        self._holder = f"{socket.gethostname()}-{os.getpid()}-{name}"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.reader = self._load(None)
        self._follower = threading.Thread(
            target=self._follow, args=(follow_interval_s,), name=f"follow-{name}", daemon=True
        )
        self._follower.start()

    def _load(self, previous: ShardReader | None) -> ShardReader:
        snapshot = current_snapshot(self.directory)
        with contextlib.suppress(OSError):  # a read-only mount: serve on, unprotected
            hold_snapshots(self.directory, self._holder, {snapshot} if snapshot else set())
        index = load_snapshot(self.directory, previous=previous.index if previous else None)
        log.info("shard %s serves snapshot %s", self.name, snapshot)
        return ShardReader(index, self.name, snapshot or "")

    def _follow(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                if current_snapshot(self.directory) != self.reader.version:
                    reader = self._load(self.reader)
                    with self._lock:
                        self.reader = reader
            except (OSError, IndexFormatError) as exc:  # tried again at the next check
                log.warning("shard %s: cannot load the new snapshot yet: %s", self.name, exc)

    def close(self) -> None:
        """Stop following and give up the snapshot lease."""
        self._stop.set()
        with contextlib.suppress(OSError):
            release_snapshots(self.directory, self._holder)

    def summary(self) -> ShardSummary:
        """See :class:`~service.answering.ShardClient`."""
        return self.reader.summary()

    def statistics(self, query: str) -> Bm25Statistics:
        """See :class:`~service.answering.ShardClient`."""
        return self.reader.statistics(query)

    def search(
        self, vector: list[float], query: str, pool: int, statistics: Bm25Statistics
    ) -> ShardFinds:
        """See :class:`~service.answering.ShardClient`."""
        return self.reader.search(vector, query, pool, statistics)

    def documents(self, doc_ids: list[str]) -> list[FetchedDocument]:
        """See :class:`~service.answering.ShardClient`."""
        return self.reader.documents(doc_ids)


class ServeShard:
    """A :class:`~service.answering.ShardClient` that calls a shard's Serve deployment."""

    def __init__(self, handle: Any, name: str, timeout_s: float) -> None:
        self.handle = handle
        self.name = name
        self.timeout_s = timeout_s

    def _call(self, method: str, *args: Any) -> Any:
        return getattr(self.handle, method).remote(*args).result(timeout_s=self.timeout_s)

    def summary(self) -> ShardSummary:
        """The shard's summary, through its handle."""
        return self._call("summary")  # type: ignore[no-any-return]

    def statistics(self, query: str) -> Bm25Statistics:
        """Round 1, through the handle."""
        return self._call("statistics", query)  # type: ignore[no-any-return]

    def search(
        self, vector: list[float], query: str, pool: int, statistics: Bm25Statistics
    ) -> ShardFinds:
        """Round 2, through the handle."""
        return self._call("search", vector, query, pool, statistics)  # type: ignore[no-any-return]

    def documents(self, doc_ids: list[str]) -> list[FetchedDocument]:
        """The named documents, through the handle."""
        return self._call("documents", doc_ids)  # type: ignore[no-any-return]


def start_shards(
    directories: Sequence[Path],
    *,
    address: str | None = None,
    follow_interval_s: float = 2.0,
    timeout_s: float = 5.0,
    replicas: int = 1,
) -> list[ServeShard]:
    """Deploy one Serve application per index directory and return a client for each.

    Without ``address`` a local Ray starts; with one (``ray start --head`` prints it) the
    shards run on that cluster, whose workers need citeqa installed and the directories at
    the same paths. Shard ``i`` is the application ``citeqa-shard-i``.
    """
    import ray
    from ray import serve

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    serve.start(proxy_location="Disabled")  # the Litestar app is the HTTP front
    deployment = serve.deployment()(ShardReplica)
    offered = ray.cluster_resources()  # type: ignore[no-untyped-call]
    clients = []
    for i, directory in enumerate(directories):
        name = f"citeqa-shard-{i}"
        # Shards ask for no CPU of their own (on one machine they share it with the front).
        # A node started with the resource of the shard's name (`ray start --resources
        # '{"citeqa-shard-0": 1}'`) holds its directory: the replica is placed there.
        options: dict[str, Any] = {"num_cpus": 0}
        if name in offered:
            options["resources"] = {name: 0.01}
        app = deployment.options(name=name, num_replicas=replicas, ray_actor_options=options).bind(
            str(Path(directory).resolve()), name, follow_interval_s
        )
        handle = serve.run(app, name=name, route_prefix=None)
        # The first call through a handle starts its router: made here, not in a question.
        handle.summary.remote().result(timeout_s=60)
        clients.append(ServeShard(handle, name, timeout_s))
    return clients
