"""Loading what the service runs on: embedder, index, LLM; and warming the LLM cache."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio.to_thread

from index import (
    BatchingEmbedder,
    CorpusIndex,
    Document,
    Embedder,
    IndexFormatError,
    IndexMissingError,
    SentenceTransformerEmbedder,
    build_index,
    current_snapshot,
    hold_snapshots,
    keep_originals,
    load_or_build,
    load_snapshot,
    read_documents,
    release_snapshots,
)
from service.answering import Answerer, Reading, ShardClient, Shards
from service.errors import IndexLoadError
from service.llm import ChatModel, EmbeddedServer, OpenAIChatModel, QueuedChatModel, assemble_model
from service.observe import elapsed_ms
from service.settings import Settings

__all__ = ["PendingWrite", "Runtime", "load_runtime", "open_index"]

log = logging.getLogger(__name__)


# A write waiting for the lock: its upserts, its deletes, and where its result goes.
PendingWrite = tuple[list[Document], list[str], "asyncio.Future[Reading]"]


@dataclass
class Runtime:
    """A loaded pipeline and what it took to load it."""

    answerer: Answerer  # lives as long as the process; a write swaps its reading
    embedded: EmbeddedServer | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending_writes: list[PendingWrite] = field(default_factory=list)
    merging: asyncio.Task[None] | None = None  # the background segment merge, if one runs
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    _rewarm_wanted: bool = False
    _rewarming: asyncio.Task[None] | None = None
    _lease: tuple[Path, str] | None = None  # a read replica's hold on the snapshots it uses

    @property
    def llm(self) -> ChatModel | None:
        """The one LLM the service talks to (behind its queue)."""
        return self.answerer.llm

    def rewarm(self, settle_s: float = 1.0) -> None:
        """Re-warm the LLM's prompt cache for the current answerer, once per burst of writes.

        Each write changes the corpus prompt; warming after every one of ten quick writes
        would queue ten warm-ups ahead of the questions. This waits ``settle_s`` after the
        last request for a re-warm, then for the LLM to be idle, and warms the answerer
        current at that time. A question in flight carries the new prompt into the LLM's
        cache itself, while a warm-up beside it would land in the server's other, colder
        slot and take the CPU from it (measured: 24-30 s instead of 8.5 s for the first
        answer after a burst of adds, benchmarks/results/answer-after-writes.md).
        """
        self._rewarm_wanted = True
        if self._rewarming is None or self._rewarming.done():
            self._rewarming = asyncio.create_task(self._rewarm(settle_s))
            self.background(self._rewarming)

    async def _rewarm(self, settle_s: float) -> None:
        while self._rewarm_wanted:
            self._rewarm_wanted = False
            await asyncio.sleep(settle_s)
            llm = self.answerer.llm
            if isinstance(llm, QueuedChatModel):
                await llm.until_idle(settle_s / 4)
            if not self._rewarm_wanted:
                await self.answerer.warm()

    def follow(self, directory: Path, interval_s: float) -> None:
        """Serve the snapshot that ``directory``'s CURRENT names, checking every ``interval_s``.

        For a read-only replica: another process writes the index. A snapshot that cannot
        be loaded yet (removed by its writer mid-read, say) is tried again at the next check;
        the one in memory goes on serving meanwhile.
        """
        holder = f"{socket.gethostname()}-{os.getpid()}-{id(self):x}"
        self._lease = (directory, holder)

        def hold(*names: str | None) -> None:
            # The lease keeps the writer from deleting what this replica serves or loads.
            try:
                hold_snapshots(directory, holder, {n for n in names if n})
            except OSError as exc:  # a read-only mount: serve on, without the protection
                log.debug("cannot lease snapshots in %s: %s", directory, exc)

        async def loop() -> None:
            serving = _current(directory)
            while True:
                hold(serving, _current(directory))
                await asyncio.sleep(interval_s)
                name = _current(directory)
                if name is None or name == serving:
                    continue
                hold(serving, name)
                answerer = self.answerer
                try:
                    index = await anyio.to_thread.run_sync(
                        functools.partial(load_snapshot, directory, previous=answerer.index)
                    )  # only the segments it does not hold yet are read
                    reading = await anyio.to_thread.run_sync(answerer.read, index)
                except (IndexFormatError, OSError) as exc:
                    log.warning("snapshot %s not loaded yet: %s", name, exc)
                    continue
                answerer.swap(reading)
                serving = name
                log.info("now serving snapshot %s", name)
                if answerer.llm is not None:
                    self.rewarm()

        self.background(asyncio.create_task(loop()))

    def watch_shards(self, interval_s: float) -> None:
        """Every ``interval_s``, take the shards' statistics again, and see which are down."""
        shards = self.answerer.shards
        assert shards is not None

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    await anyio.to_thread.run_sync(shards.refresh)
                except Exception:  # the next check tries again; questions go on meanwhile
                    log.exception("could not refresh the shards' statistics")

        self.background(asyncio.create_task(loop()))

    def background(self, task: asyncio.Task[None]) -> None:
        """Keep a reference to a fire-and-forget task until it finishes."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Release the LLM client, the embedded server and a replica's snapshot lease."""
        if self._lease is not None:
            with contextlib.suppress(OSError):
                release_snapshots(*self._lease)
        for task in list(self._tasks):
            task.cancel()
        if isinstance(self.llm, QueuedChatModel):
            await self.llm.aclose()
        if self.embedded is not None:
            self.embedded.stop()
        if self.answerer.shards is not None:
            self.answerer.shards.close()


def open_index(settings: Settings, embedder: Embedder, *, progress: bool = False) -> CorpusIndex:
    """Load the configured index, building or seeding it as the settings say.

    A read-only replica only loads: the index is another process's to build and change.
    """
    if settings.read_only:
        try:
            return load_snapshot(settings.index_dir)
        except IndexMissingError as exc:
            raise IndexLoadError(
                f"{settings.index_dir}: no index yet; a read-only replica needs its writer to "
                "build one first"
            ) from exc
        except (IndexFormatError, OSError) as exc:
            raise IndexLoadError(str(exc)) from exc
    try:
        originals: list[tuple[str, bytes]] = []
        docs = read_documents(settings.seed_paths, originals)
        keep_originals(settings.index_dir, originals)
        return load_or_build(
            settings.index_dir,
            docs,
            embedder,
            progress=progress,
            sync_seed=settings.corpus is not None,
            compress_threshold=settings.compress_above,
        )
    except (IndexFormatError, ValueError, OSError) as exc:
        raise IndexLoadError(str(exc)) from exc


def _current(directory: Path) -> str | None:
    """The snapshot ``directory`` serves, or None while it cannot be read (a replica retries)."""
    try:
        return current_snapshot(directory)
    except OSError:
        return None


async def load_runtime(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    llm: ChatModel | None = None,
    with_llm: bool = True,
    warm: bool = True,
    progress: bool = False,
    shards: Sequence[ShardClient] | None = None,
) -> Runtime:
    """Load the embedder and index, start or connect the LLM, and warm its prompt cache.

    ``embedder`` and ``llm`` replace the ones the settings name (tests fill these seams);
    without ``warm``, the documents are not screened and the prompt cache is left cold.
    With ``shards``, no index is opened here: each question reads from the shards.
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    if embedder is None:
        log.info("loading the embedder")
        # Each slow step runs in a thread: the event loop stays free, so that probes are
        # answered (503 while loading) from the first second.
        embedder = await anyio.to_thread.run_sync(SentenceTransformerEmbedder)
    if settings.embed_max_batch:
        embedder = BatchingEmbedder(embedder, settings.embed_max_batch)
    timings["embedder"] = elapsed_ms(started)
    step = time.perf_counter()
    if shards is not None:
        index = build_index([], embedder)
    else:
        if settings.read_only:
            while _current(settings.index_dir) is None:  # the writer has not built it yet
                log.info("waiting for an index to follow in %s", settings.index_dir)
                await asyncio.sleep(settings.follow_interval_s)
        log.info("loading the index")
        index = await anyio.to_thread.run_sync(
            functools.partial(open_index, settings, embedder, progress=progress)
        )
    timings["index"] = elapsed_ms(step)
    embedded: EmbeddedServer | None = None
    if with_llm and llm is None:
        step = time.perf_counter()
        base_url = settings.llm_base_url
        if base_url is None:
            log.info("starting the embedded LLM")
            model_path = await anyio.to_thread.run_sync(assemble_model, settings.model_cache_dir)
            embedded = EmbeddedServer(
                model_path,
                n_ctx=settings.llm_ctx,
                threads=settings.llm_threads,
                verbosity=settings.llm_verbosity,
                cache_ram_mib=settings.llm_cache_ram_mib,
            )
            base_url = await anyio.to_thread.run_sync(embedded.start)
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        llm = OpenAIChatModel(
            base_url,
            model=settings.llm_model,
            api_key=key,
            timeout_s=settings.llm_timeout_s,
            retries=settings.llm_retries,
        )
        timings["llm"] = elapsed_ms(step)
    if llm is not None:
        llm = QueuedChatModel(
            llm, running=settings.llm_running, max_waiting=settings.llm_max_waiting
        )
    answerer = await anyio.to_thread.run_sync(Answerer.over, index, embedder, llm, settings)
    if shards is not None:
        answerer.shards = Shards(shards, embedder, settings)
        await anyio.to_thread.run_sync(answerer.shards.refresh)
    answerer.swap(answerer.reading)  # the metrics show the index served
    if llm is not None and warm:
        step = time.perf_counter()
        log.info("warming the LLM's prompt cache")
        await answerer.warm()
        timings["warm"] = elapsed_ms(step)
    timings["total"] = elapsed_ms(started)
    log.info("ready: %s", timings)
    return Runtime(answerer, embedded, timings)
