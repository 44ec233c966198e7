"""What handlers get injected (Litestar's ``Provide``): runtime, settings, the key's access."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from service.errors import NotReadyError
from service.http.access import Access
from service.runtime import Runtime
from service.settings import Settings

__all__ = ["DEPENDENCIES", "AccessDep", "Lifecycle", "RuntimeDep", "SettingsDep"]

RuntimeDep: TypeAlias = NamedDependency[Runtime]
SettingsDep: TypeAlias = NamedDependency[Settings]
AccessDep: TypeAlias = NamedDependency[Access]


@dataclass
class Lifecycle:
    """Where loading stands; handlers read it, the lifespan's loading task writes it."""

    runtime: Runtime | None = None
    failure: str | None = None


def _runtime(state: State) -> Runtime:
    life: Lifecycle = state.life
    if life.failure is not None:
        raise NotReadyError(f"service failed to load: {life.failure}", retry_after_s=None)
    if life.runtime is None:
        raise NotReadyError()
    return life.runtime


def _settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


def _access(request: Request[Any, Any, Any]) -> Access:
    """What the key may do, as the ``/v1`` guard found it (``service/http/guards.py``)."""
    access: Access = request.state.access
    return access


DEPENDENCIES = {
    "access": Provide(_access, sync_to_thread=False),
    "runtime": Provide(_runtime, sync_to_thread=False),
    "settings": Provide(_settings, sync_to_thread=False),
}
