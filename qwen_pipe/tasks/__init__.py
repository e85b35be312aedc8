"""Datasets: every module directly in this package is one dataset, named after it, that registers its task
with `@register`; what several datasets share lives in `common/` (and their own data in `embedded/`).

`TASKS` is derived from the package's files without importing them, so that listing names is cheap and
loading one task imports only what it needs (the math task alone pulls in sympy), and so that a
dataset's DVC cells depend on exactly its own module plus the shared layers (qwen_pipe/codedeps.py). A
task module imports no other task module. `common/registry.py` loads tasks by name; config checks params
against these names.

A multiple-choice dataset can also be asked as a letter choice (`format="letters"`, params
`tasks.<name>.format`): the same records, lettered options, and the reply's letter graded.
"""

from __future__ import annotations

import pkgutil

TASKS: tuple[str, ...] = tuple(
    sorted(
        module.name
        for module in pkgutil.iter_modules(__path__)
        if not module.ispkg and not module.name.startswith("_")
    )
)
FORMATS = ("letters",)  # answer formats besides a task's own
# The datasets an LLM judge scores (their tasks are JudgedTask; tests/test_judge.py proves the two agree):
# params can ask for a judge without importing a task.
JUDGED = ("arena_hard", "mt_bench")


def task_names() -> list[str]:
    return list(TASKS)
