"""Loading tasks by name: each task module registers its class with `@register` when imported."""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

import qwen_pipe.tasks as package
from qwen_pipe.errors import QwenPipeError, unknown_name
from qwen_pipe.tasks import FORMATS, TASKS
from qwen_pipe.tasks.base import Task

if TYPE_CHECKING:
    from qwen_pipe.config import Params

_REGISTRY: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    _REGISTRY[cls.name] = cls
    return cls


def discover_all() -> dict[str, type[Task]]:
    """Import every module of this package (for the registry test): name -> class as registered."""
    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in {"base", "multiple_choice"} and not module.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{module.name}")
    return dict(_REGISTRY)


def get_task(name: str, shots: int | None = None, format: str | None = None) -> Task:
    if name not in TASKS:
        raise unknown_name("dataset", name, list(TASKS))
    if name not in _REGISTRY:
        importlib.import_module(f"{package.__name__}.{TASKS[name]}")
    cls = _REGISTRY[name]
    if format is not None:
        from qwen_pipe.tasks.multiple_choice import MultipleChoiceTask, letter_choice

        if format not in FORMATS:
            raise unknown_name("format", format, list(FORMATS))
        if not issubclass(cls, MultipleChoiceTask):
            raise QwenPipeError(
                f"{name} is not a multiple-choice dataset, so it has no {format} format",
                f"remove format from tasks.{name}",
            )
        cls = letter_choice(cls)
    return cls(shots=shots)


def task_for(params: Params, dataset: str) -> Task:
    """The dataset's task with the run's options (params `tasks.<dataset>`: shots, answer format)."""
    options = params.task_params(dataset)
    return get_task(dataset, shots=options.shots, format=options.format)
