"""The ``citeqa`` command: serve, ask, index build, eval."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import click

from index import (
    DEFAULT_COLLECTION,
    IndexFormatError,
    SentenceTransformerEmbedder,
    build_index,
    current_snapshot,
    keep_originals,
    load_snapshot,
    read_documents,
    save_snapshot,
)
from service.eval import (
    eval_settings,
    evaluate,
    evaluate_conversations,
    read_conversations,
    read_questions,
)
from service.observe import configure_logging
from service.runtime import load_runtime, open_index
from service.schemas import COLLECTION_NAME, AnswerMode
from service.settings import Settings, bundled_corpus, bundled_eval

__all__ = ["main"]

_MODES = click.Choice(["llm", "extractive"])


def _settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
def main(verbose: bool) -> None:
    """Question answering with verified sentence citations."""
    settings = Settings()
    level = logging.DEBUG if verbose else getattr(logging, settings.log_level)
    configure_logging(level=level, json=settings.log_format == "json")


@main.command()
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8000).")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), default=None)
@click.option(
    "--read-only",
    is_flag=True,
    default=None,
    help="Serve an index another process writes: follow its snapshots, refuse writes.",
)
@click.option(
    "--shards",
    "shard_dirs",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Answer from these index directories, one Ray Serve shard each (repeat it; "
    "citeqa[ray]). Each shard follows its directory's snapshots and writes the documents "
    "routed to it (by a stable hash of doc_id; --read-only refuses writes). On a cluster, "
    "each path is read on the node that runs the shard.",
)
@click.option("--address", default=None, help="With --shards: the Ray cluster (default: local).")
def serve(
    host: str | None,
    port: int | None,
    index_dir: Path | None,
    read_only: bool | None,
    shard_dirs: tuple[Path, ...],
    address: str | None,
) -> None:
    """Serve the HTTP API; the index is built first if missing or stale (unless --read-only)."""
    import uvicorn

    from service.http import KeysFileError, create_app

    if address and not shard_dirs:
        raise click.UsageError("--address goes with --shards")
    settings = _settings(host=host, port=port, index_dir=index_dir, read_only=read_only or None)
    # JSON unless console text was asked for, at the level the group option set.
    configure_logging(level=logging.getLogger().level, json=settings.log_format != "console")
    loader = load_runtime
    if shard_dirs:
        from service.sharding import start_shards

        try:
            clients = start_shards(shard_dirs, address=address, timeout_s=settings.shard_timeout_s,
                                   follow_interval_s=settings.follow_interval_s)  # fmt: skip
        except ImportError as exc:
            raise click.ClickException(
                f"--shards runs on Ray Serve: pip install 'citeqa[ray]' ({exc})"
            ) from exc
        loader = functools.partial(load_runtime, shards=clients)
    try:
        app = create_app(settings, loader=loader)
    except KeysFileError as exc:
        raise click.ClickException(str(exc)) from exc
    # uvicorn's loggers go through the root handler; its access log would repeat ours.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
    )


@main.command()
def prepare() -> None:
    """Assemble and verify the embedded model, and build the default index, ahead of serving."""
    from service.llm import assemble_model

    settings = Settings()
    click.echo(f"model: {assemble_model(settings.model_cache_dir)}")
    index = open_index(settings, SentenceTransformerEmbedder(), progress=True)
    click.echo(f"index: {settings.index_dir} ({index.manifest.sentences} sentences)")


@main.command()
@click.argument("question")
@click.option("--mode", type=_MODES, default="llm", show_default=True)
@click.option("--top-k", type=click.IntRange(1, 20), default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the full response as JSON.")
@click.option(
    "--index", "index_dir", type=click.Path(path_type=Path), default=None, help="Index directory."
)
def ask(question: str, mode: AnswerMode, top_k: int, as_json: bool, index_dir: Path | None) -> None:
    """Answer QUESTION over the configured corpus and print its citations."""
    import msgspec

    async def run() -> None:
        runtime = await load_runtime(_settings(index_dir=index_dir), with_llm=mode == "llm")
        try:
            response = await runtime.answerer.ask(question, top_k, mode)
        finally:
            await runtime.aclose()
        if as_json:
            click.echo(msgspec.json.format(msgspec.json.encode(response)).decode())
            return
        click.echo(response.answer)
        for n, c in enumerate(response.citations, 1):
            click.echo(f"  [{n}] {c.doc_id} [{c.start}, {c.end}) {c.text}")
        if response.degraded:
            click.echo("(the LLM failed; this is an extractive answer)", err=True)

    asyncio.run(run())


@main.group("index")
def index_group() -> None:
    """Build and inspect indexes."""


@index_group.command("build")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Index directory.")
@click.option("--force", is_flag=True, help="Replace the index already in the directory, if any.")
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Split and embed in this process, or on Ray Data (pip install 'citeqa[ray]').",
)
@click.option("--address", default=None, help="Ray cluster address; default: a local Ray.")
@click.option("--actors", type=click.IntRange(1), default=2, show_default=True)
@click.option(
    "--collection",
    default=DEFAULT_COLLECTION,
    show_default=True,
    help="The collection the documents go into (a doc_id is unique within one).",
)
def build(
    paths: tuple[Path, ...],
    out: Path | None,
    force: bool,
    engine: str,
    address: str | None,
    actors: int,
    collection: str,
) -> None:
    """Index PATHS (.txt, .md, or .jsonl of {doc_id, title, text}); default: the bundled article.

    An index already in the directory (the served one, by default) is kept unless
    --force is given: it may hold documents added through the API.
    """
    settings = _settings(index_dir=out, corpus=list(paths) or None)
    if current_snapshot(settings.index_dir) is not None and not force:
        raise click.ClickException(
            f"{settings.index_dir} already holds an index; choose another with --out DIR, "
            "or pass --force to replace it and the documents added to it"
        )
    if not re.fullmatch(COLLECTION_NAME, collection):
        raise click.BadParameter(
            "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            param_hint="--collection",
        )
    originals: list[tuple[str, bytes]] = []
    try:
        docs = read_documents(settings.seed_paths, originals, collection)
        keep_originals(settings.index_dir, originals)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    if engine == "ray":
        try:
            from index.ray import build_on_ray
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise click.ClickException("--engine ray needs: pip install 'citeqa[ray]'") from exc
        index = build_on_ray(docs, address=address, actors=actors)
    else:
        index = build_index(docs, SentenceTransformerEmbedder(), progress=True)
    snapshot = save_snapshot(index, settings.index_dir)
    m = index.manifest
    click.echo(
        f"indexed {m.documents} documents, {m.sentences} sentences, {m.chunks} chunks -> {snapshot}"
    )


@index_group.command("check")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check(directory: Path, as_json: bool) -> None:
    """Verify every file of DIRECTORY's current snapshot, load it, and report what it holds.

    Exits non-zero, naming the file, on any fault.
    """
    try:
        index = load_snapshot(directory)
    except IndexFormatError as exc:
        raise click.ClickException(str(exc)) from exc
    m = index.manifest
    report = {
        "directory": str(directory),
        "format_version": m.format_version,
        "model_id": m.model_id,
        "documents": len(index.documents),
        "sentences": len(index.sentences),
        "chunks": len(index.chunks),
        "segments": len(index.segments),
        "tombstones": index.tombstones,
        "vector_index": m.vector_index,
        "files_verified": sum(len(entry.files) for entry in m.segments) + 1,
        "content_digest": index.content_digest,
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for key, value in report.items():
        click.echo(f"{key:>15}: {value}")


@index_group.command("reshard")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--into", type=click.IntRange(1), required=True, help="How many shards.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Where the new shards go: OUT/shard-0 ... OUT/shard-N-1.")  # fmt: skip
def reshard_command(sources: tuple[Path, ...], into: int, out: Path) -> None:
    """Deal the documents of the SOURCES index directories over --into new shards.

    A document goes where citeqa serve --shards writes it (a stable hash of its doc_id),
    keeping its sentence ids, offsets and vectors; nothing is embedded again. Serve the new
    directories in the same order: citeqa serve --shards OUT/shard-0 --shards OUT/shard-1 ...
    """
    from service.sharding import reshard

    try:
        targets = reshard(sources, into, out)
    except (ValueError, IndexFormatError) as exc:
        raise click.ClickException(str(exc)) from exc
    for target in targets:
        click.echo(f"{target}: {load_snapshot(target).manifest.documents} documents")


@main.command("eval")
@click.argument(
    "questions", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False
)
@click.option(
    "--conversations",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Score multi-turn conversations through the chat pipeline instead of QUESTIONS.",
)
@click.option(
    "--corpus",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Corpus files (default: the bundled article).",
)
@click.option("--mode", type=_MODES, default="llm", show_default=True)
@click.option("--top-k", type=click.IntRange(1, 20), default=5, show_default=True)
@click.option("--limit", type=int, default=None, help="Only the first N questions.")
@click.option("--offset", type=int, default=0, show_default=True, help="Skip the first N.")
@click.option(
    "--retrieval",
    type=click.Choice(["dense", "hybrid"]),
    default=None,
    help="Override CITEQA_RETRIEVAL for this run.",
)
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None)
def eval_command(
    questions: Path | None,
    conversations: Path | None,
    corpus: tuple[Path, ...],
    mode: AnswerMode,
    top_k: int,
    limit: int | None,
    offset: int,
    retrieval: str | None,
    json_out: Path | None,
) -> None:
    """Run QUESTIONS through the pipeline and print accuracy, citation and latency figures.

    Without QUESTIONS or --conversations, the bundled article's development questions run.
    The corpus (default: the bundled article) gets an index of its own, never the served one.
    """
    settings = eval_settings(list(corpus) or [bundled_corpus()])
    if retrieval:
        settings = settings.model_copy(update={"retrieval": retrieval})
    if conversations is not None and questions is not None:
        raise click.UsageError("give QUESTIONS or --conversations, not both")
    if conversations is not None and mode != "llm":
        raise click.UsageError("--conversations needs --mode llm: follow-ups are rewritten by it")

    rows = slice(offset, None if limit is None else offset + limit)

    async def run() -> dict[str, Any]:
        runtime = await load_runtime(settings, with_llm=mode == "llm", progress=True)
        try:
            if conversations is not None:
                dialogues = read_conversations(conversations)[rows]
                return await evaluate_conversations(runtime.answerer, dialogues, top_k)
            items = read_questions(questions or bundled_eval("article_questions.json"))[rows]
            return await evaluate(runtime.answerer, items, mode, top_k)
        finally:
            await runtime.aclose()

    result = asyncio.run(run())
    for key, value in result["figures"].items():
        click.echo(f"{key:>24}: {value}")
    if json_out:
        json_out.write_text(json.dumps(result, indent=2))
        click.echo(f"wrote {json_out}", err=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
