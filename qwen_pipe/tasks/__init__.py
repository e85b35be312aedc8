"""Task registry: every task module registers itself by name."""

from __future__ import annotations

import importlib
import pkgutil

from qwen_pipe.errors import unknown_name
from qwen_pipe.tasks.base import Task

_REGISTRY: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    if _REGISTRY:
        return
    for module in pkgutil.iter_modules(__path__):
        if module.name not in {"base"} and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


def task_names() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def get_task(name: str, shots: int | None = None) -> Task:
    _discover()
    if name not in _REGISTRY:
        raise unknown_name("dataset", name, list(_REGISTRY))
    return _REGISTRY[name](shots=shots)
