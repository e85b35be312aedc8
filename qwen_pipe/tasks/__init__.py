"""Task registry: every task module registers its tasks by name with `@register`.

`TASKS` maps each name to its module so that listing names, or loading one task, imports only what is
needed (the math task alone pulls in sympy); `tests/test_task_registry.py` checks the table against what
the modules register.
"""

from __future__ import annotations

import importlib
import pkgutil

from qwen_pipe.errors import unknown_name
from qwen_pipe.tasks.base import Task

_MC = ("arc_challenge", "arc_easy", "boolq", "hellaswag", "mmlu", "piqa", "truthfulqa", "winogrande")
TASKS: dict[str, str] = {
    **{
        name: name
        for name in (
            "bbh",
            "gsm8k",
            "humaneval",
            "humaneval_plus",
            "ifeval",
            "math500",
            "mbpp",
            "mbpp_plus",
            "mt_bench",
            *_MC,
        )
    },
    **{f"{name}_gen": name for name in _MC},  # the letter-choice variants live beside their task
}
_REGISTRY: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    _REGISTRY[cls.name] = cls
    return cls


def discover_all() -> dict[str, type[Task]]:
    """Import every module of this package (for the registry test): name -> class as registered."""
    for module in pkgutil.iter_modules(__path__):
        if module.name not in {"base", "multiple_choice"} and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    return dict(_REGISTRY)


def task_names() -> list[str]:
    return sorted(TASKS)


def get_task(name: str, shots: int | None = None) -> Task:
    if name not in TASKS:
        raise unknown_name("dataset", name, list(TASKS))
    if name not in _REGISTRY:
        importlib.import_module(f"{__name__}.{TASKS[name]}")
    return _REGISTRY[name](shots=shots)
