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
    Document,
    EmbeddedAlready,
    Embedder,
    IndexFormatError,
    SentenceTransformerEmbedder,
    build_index,
    current_snapshot,
    hold_snapshots,
    load_snapshot,
    merge_plan,
    merged_segment,
    release_snapshots,
    save_snapshot,
    update_index,
    with_merged,
)
from service.answering import (
    FetchedDocument,
    Scope,
    ShardFinds,
    ShardReader,
    ShardSummary,
    ShardWritten,
    shard_of,
)

__all__ = ["ServeShard", "ShardReplica", "reshard", "start_shards"]

log = logging.getLogger(__name__)


class ShardReplica:
    """One shard's index directory, served and followed: a Serve replica's state.

    It follows the directory's ``CURRENT`` (another process may write it), and it writes
    what the front routes to it (``write``): run one replica per shard that takes writes.
    Its embedder loads at the first write (``embedder`` replaces it in tests).
    """

    def __init__(
        self,
        directory: str,
        name: str,
        follow_interval_s: float = 2.0,
        embedder: Embedder | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.name = name
        self._embedder = embedder
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
        if snapshot is None and previous is None:  # a new shard: it starts as an empty index
            if self._embedder is None:
                self._embedder = SentenceTransformerEmbedder()
            save_snapshot(build_index([], self._embedder), self.directory)
            snapshot = current_snapshot(self.directory)
        with contextlib.suppress(OSError):  # a read-only mount: serve on, unprotected
            hold_snapshots(self.directory, self._holder, {snapshot} if snapshot else set())
        index = load_snapshot(self.directory, previous=previous.index if previous else None)
        log.info("shard %s serves snapshot %s", self.name, snapshot)
        return ShardReader(index, self.name, snapshot or "")

    def _follow(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                with self._lock:  # not while this replica writes the directory itself
                    if current_snapshot(self.directory) != self.reader.version_name:
                        self.reader = self._load(self.reader)
            except (OSError, IndexFormatError) as exc:  # tried again at the next check
                log.warning("shard %s: cannot load the new snapshot yet: %s", self.name, exc)

    def write(self, upserts: list[Document], deletes: list[str]) -> ShardWritten:
        """Add or replace ``upserts`` and remove ``deletes``; durable, then served."""
        with self._lock:
            if self._embedder is None:
                self._embedder = SentenceTransformerEmbedder()
            before = self.reader.index
            index = update_index(before, self._embedder, upserts=upserts, deletes=deletes)
            while plan := merge_plan(index):  # small segments folded as the service does
                merged = with_merged(index, merged_segment(index, plan), plan)
                if merged is None:  # nothing to lay over (not expected under the lock)
                    break
                index = merged
            save_snapshot(index, self.directory)  # durable before it is served or answered
            self.reader = ShardReader(index, self.name, current_snapshot(self.directory) or "")
        return ShardWritten(
            [(d.doc_id, len(index.sentences_of(d.doc_id)), len(index.chunks_of(d.doc_id)),
              d.doc_id in before.documents) for d in upserts],
            len(index.documents),
            len(index.sentences),
        )  # fmt: skip

    def close(self) -> None:
        """Stop following and give up the snapshot lease."""
        self._stop.set()
        with contextlib.suppress(OSError):
            release_snapshots(self.directory, self._holder)

    def version(self) -> str:
        """See :class:`~service.answering.ShardClient`."""
        return self.reader.version_name

    def content_rows(self) -> list[tuple[str, str, int, int]]:
        """See :class:`~service.answering.ShardClient`."""
        return self.reader.content_rows()

    def summary(self) -> ShardSummary:
        """See :class:`~service.answering.ShardClient`."""
        return self.reader.summary()

    def search(
        self,
        vector: list[float],
        query: str,
        pool: int,
        statistics: Bm25Statistics,
        scope: Scope | None = None,
    ) -> ShardFinds:
        """See :class:`~service.answering.ShardClient`."""
        return self.reader.search(vector, query, pool, statistics, scope)

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

    def version(self) -> str:
        """The shard's snapshot, through its handle."""
        return self._call("version")  # type: ignore[no-any-return]

    def content_rows(self) -> list[tuple[str, str, int, int]]:
        """The shard's sentence rows, through its handle."""
        return self._call("content_rows")  # type: ignore[no-any-return]

    def summary(self) -> ShardSummary:
        """The shard's summary, through its handle."""
        return self._call("summary")  # type: ignore[no-any-return]

    def search(
        self,
        vector: list[float],
        query: str,
        pool: int,
        statistics: Bm25Statistics,
        scope: Scope | None = None,
    ) -> ShardFinds:
        """Round 2, through the handle."""
        return self._call("search", vector, query, pool, statistics, scope)  # type: ignore[no-any-return]

    def documents(self, doc_ids: list[str]) -> list[FetchedDocument]:
        """The named documents, through the handle."""
        return self._call("documents", doc_ids)  # type: ignore[no-any-return]

    def write(self, upserts: list[Document], deletes: list[str]) -> ShardWritten:
        """A write, through the handle (the front bounds how long it waits)."""
        response = self.handle.write.remote(upserts, deletes)
        return response.result()  # type: ignore[no-any-return]


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


def reshard(sources: Sequence[Path], into: int, out: Path) -> list[Path]:
    """Deal the documents of ``sources`` over ``into`` new index directories, ``out/shard-i``.

    Each document goes to ``shard_of(doc_id, into)``, the shard the front writes it to,
    with its sentences, their ids and offsets, its BM25 tokens and its vectors: nothing is
    split or embedded again. The sources are left as they are.
    """
    if into < 1:
        raise ValueError("--into takes at least 1 shard")
    indexes = [load_snapshot(Path(source)) for source in sources]
    models = {(ix.manifest.model_id, ix.manifest.dim) for ix in indexes}
    if len(models) > 1:
        raise ValueError(f"the sources were embedded by different models: {sorted(models)}")
    model_id, dim = models.pop() if models else ("", 0)
    parts: list[list[tuple[Any, Document]]] = [[] for _ in range(into)]
    seen: set[str] = set()
    for ix in indexes:
        for doc in ix.documents.values():
            if doc.doc_id in seen:
                raise ValueError(f"{doc.doc_id!r} is in more than one source")
            seen.add(doc.doc_id)
            parts[shard_of(doc.doc_id, into)].append((ix, doc))
    targets = [out / f"shard-{i}" for i in range(into)]
    for target in targets:
        if current_snapshot(target) is not None:
            raise ValueError(f"{target} already holds an index; give another --out")
    for part, target in zip(parts, targets, strict=True):
        reuse, split = {}, {}
        for ix, doc in part:
            sentences = ix.sentences_of(doc.doc_id)
            split[doc.doc_id] = (sentences, ix.tokens_of(doc.doc_id))
            for sentence, row in zip(sentences, ix.vectors[ix.positions_of(doc.doc_id)],
                                     strict=True):  # fmt: skip
                reuse[sentence.sentence_id] = row
        docs = [doc for _, doc in part]
        save_snapshot(build_index(docs, EmbeddedAlready(model_id, dim), reuse=reuse,
                                  split=split), target)  # fmt: skip
        log.info("%s: %d documents", target, len(docs))
    return targets
