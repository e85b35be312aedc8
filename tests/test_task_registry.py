"""The static name -> module table matches what the task modules register."""

from __future__ import annotations

from qwen_pipe.tasks import TASKS
from qwen_pipe.tasks.registry import discover_all


def test_table_matches_the_modules():
    registered = discover_all()
    assert set(registered) == set(TASKS)
    for name, cls in registered.items():
        assert cls.__module__ == f"qwen_pipe.tasks.{TASKS[name]}", name
