"""The app factory: routes, dependencies, middleware, and a lifespan that loads in the back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.plugins.prometheus import PrometheusConfig
from litestar.static_files import create_static_files_router

from service.errors import CiteQAError
from service.http.access import KeyRing
from service.http.apidoc import CompletedJson
from service.http.controllers import (
    AnswersController,
    DocumentsController,
    HealthController,
    Metrics,
    OpenAIController,
    playground,
)
from service.http.controllers.health import STATIC
from service.http.dependencies import DEPENDENCIES, Lifecycle
from service.http.errors import error_response
from service.http.guards import require_api_key
from service.http.middleware import BodyDeadline, RequestLog, check_json_body, rate_limit
from service.runtime import Runtime, load_runtime
from service.settings import Settings

__all__ = ["Loader", "create_app"]

log = logging.getLogger(__name__)

Loader = Callable[[Settings], Awaitable[Runtime]]


def _without_paths(message: str, settings: Settings) -> str:
    """``message`` with the server's directories named by their setting, not their path."""
    for name in ("index_dir", "model_cache_dir"):
        path: Path = getattr(settings, name)
        for form in sorted({str(path.resolve()), str(path)}, key=len, reverse=True):
            message = message.replace(form, f"<{name}>")
    return message


def _lifespan(settings: Settings, loader: Loader, life: Lifecycle, keys: KeyRing) -> Any:
    """Load the runtime in the background, so that probes answer at once; close it at exit.

    SIGHUP reads the keys file again, while it runs.
    """

    async def load() -> None:
        try:
            life.runtime = await loader(settings)
            if life.runtime.answerer.shards is not None:
                life.runtime.watch_shards(settings.follow_interval_s)
            elif settings.read_only:
                life.runtime.follow(settings.index_dir, settings.follow_interval_s)
        except CiteQAError as exc:  # expected failures carry a message fit for /readyz
            log.error("loading failed: %s", exc.message)
            life.failure = _without_paths(exc.message, settings)
        except Exception as exc:
            log.exception("loading failed")
            life.failure = _without_paths(str(exc) or type(exc).__name__, settings)

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        task = asyncio.create_task(load())
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, keys.reload)  # not on Windows, nor off main
        try:
            yield
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGHUP)
            if not task.done():
                task.cancel()
            if life.runtime is not None:
                await life.runtime.aclose()

    return lifespan


def create_app(settings: Settings | None = None, *, loader: Loader = load_runtime) -> Litestar:
    """Build the app; the index and LLM load in the background after startup."""
    settings = settings or Settings()
    life = Lifecycle()
    keys = KeyRing(settings)  # a keys file that cannot be read stops the start here
    v1 = Router(
        path="/v1",
        route_handlers=[AnswersController, DocumentsController, OpenAIController],
        guards=[require_api_key],
    )
    prometheus = PrometheusConfig(
        app_name="citeqa", prefix="citeqa_http", group_path=True, exclude=["/metrics"]
    )
    middleware: list[Any] = [RequestLog(), prometheus.middleware]
    if settings.rate_limit_per_minute:
        middleware.append(rate_limit(settings.rate_limit_per_minute))
    middleware.append(BodyDeadline(settings.body_timeout_s))
    return Litestar(
        route_handlers=[
            playground,
            create_static_files_router("/static", [STATIC], include_in_schema=False),
            HealthController,
            Metrics,
            v1,
        ],
        dependencies=DEPENDENCIES,
        cors_config=CORSConfig(
            allow_origins=list(settings.cors_origin_list),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
        if settings.cors_origin_list
        else None,
        middleware=middleware,
        state=State(
            {"life": life, "settings": settings, "key_ring": keys, "started": int(time.time())}
        ),
        lifespan=[_lifespan(settings, loader, life, keys)],
        exception_handlers={Exception: error_response},
        before_request=check_json_body,
        openapi_config=OpenAPIConfig(
            title="citeqa",
            version="0.1.0",
            path="/schema",
            render_plugins=[ScalarRenderPlugin(), CompletedJson()],
        ),
        request_max_body_size=settings.max_body_bytes,
        logging_config=None,  # logging is the CLI's (service/observe.py), not Litestar's
    )
