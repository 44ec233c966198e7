"""What handlers get injected (Litestar's ``Provide``): the loaded runtime and the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from service.errors import NotReadyError
from service.runtime import Runtime
from service.settings import Settings

__all__ = ["DEPENDENCIES", "Lifecycle", "RuntimeDep", "SettingsDep"]

RuntimeDep: TypeAlias = NamedDependency[Runtime]
SettingsDep: TypeAlias = NamedDependency[Settings]


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


DEPENDENCIES = {
    "runtime": Provide(_runtime, sync_to_thread=False),
    "settings": Provide(_settings, sync_to_thread=False),
}
