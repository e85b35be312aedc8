"""Loading tasks by name: each task module registers its class with `@register` when imported.

A task defined outside `qwen_pipe/tasks/` (a test's toy dataset, a plugin) is found once its class is
registered; it is not in `TASKS`, so params and `qwen-pipe datasets` do not list it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import qwen_pipe.tasks as package
from qwen_pipe.errors import QwenPipeError, unknown_name
from qwen_pipe.protocols import DEFAULT_PROTOCOL
from qwen_pipe.tasks import FORMATS, TASKS
from qwen_pipe.tasks.common.base import Task

if TYPE_CHECKING:
    from qwen_pipe.config import Params

_REGISTRY: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    _REGISTRY[cls.name] = cls
    return cls


def discover_all() -> dict[str, type[Task]]:
    """Import every dataset module of the package (for the registry test): name -> class as registered by them."""
    for name in TASKS:
        importlib.import_module(f"{package.__name__}.{name}")
    return {name: cls for name, cls in _REGISTRY.items() if cls.__module__.startswith(f"{package.__name__}.")}


def task_class(name: str) -> type[Task]:
    """The class of a dataset: its module is imported on first use; a task registered from elsewhere is found too."""
    if name not in _REGISTRY:
        if name not in TASKS:
            raise unknown_name("dataset", name, list(TASKS))
        importlib.import_module(f"{package.__name__}.{name}")
    return _REGISTRY[name]


def get_task(
    name: str, shots: int | None = None, format: str | None = None, protocol: str = DEFAULT_PROTOCOL
) -> Task:
    cls = task_class(name)
    if format is not None:
        from qwen_pipe.tasks.common.multiple_choice import MultipleChoiceTask, letter_choice

        if format not in FORMATS:
            raise unknown_name("format", format, list(FORMATS))
        if protocol == "lm-eval":
            raise QwenPipeError(
                f"{name} asked as a {format} choice is not an lm-evaluation-harness task",
                f"remove format from tasks.{name}, or use protocol qwen-pipe or qwen",
            )
        if not issubclass(cls, MultipleChoiceTask):
            raise QwenPipeError(
                f"{name} is not a multiple-choice dataset, so it has no {format} format",
                f"remove format from tasks.{name}",
            )
        cls = letter_choice(cls)
    return cls(shots=shots, protocol=protocol)


def task_for(params: Params, dataset: str) -> Task:
    """The dataset's task under the run's protocol with its options (params `tasks.<dataset>`: shots, answer format)."""
    options = params.task_params(dataset)
    return get_task(dataset, shots=options.shots, format=options.format, protocol=params.protocol)
