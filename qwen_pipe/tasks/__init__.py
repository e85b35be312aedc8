"""Task registry: every task module registers its task by name with `@register`.

`TASKS` maps each dataset to its module (one module per dataset, named after it, importing no other
task module) so that listing names, or loading one task, imports only what is needed (the math task alone
pulls in sympy), and so that a dataset's DVC cells depend on exactly its own module plus the shared layers
(qwen_pipe/codedeps.py). This package's __init__ holds only the names (config checks params against them);
`registry.py` loads tasks. `tests/test_task_registry.py` checks the table against what the modules register.

A multiple-choice dataset can also be asked as a letter choice (`format="letters"`, params
`tasks.<name>.format`): the same records, lettered options, and the reply's letter graded.
"""

from __future__ import annotations

TASKS: dict[str, str] = {
    name: name
    for name in (
        "arc_challenge",
        "arc_easy",
        "bbh",
        "boolq",
        "gsm8k",
        "hellaswag",
        "humaneval",
        "humaneval_plus",
        "ifeval",
        "math500",
        "mbpp",
        "mbpp_plus",
        "mmlu",
        "mt_bench",
        "piqa",
        "truthfulqa",
        "winogrande",
    )
}
FORMATS = ("letters",)  # answer formats besides a task's own


def task_names() -> list[str]:
    return sorted(TASKS)
