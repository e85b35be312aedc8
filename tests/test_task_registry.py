"""The name table is the package's modules, and each module registers the dataset it is named after."""

from __future__ import annotations

import pytest

from qwen_pipe.codedeps import PACKAGE_DIR, closure, relative
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.tasks import TASKS
from qwen_pipe.tasks.common.registry import discover_all, get_task


def test_table_matches_the_modules():
    registered = discover_all()
    assert set(registered) == set(TASKS)
    for name, cls in registered.items():
        assert cls.__module__ == f"qwen_pipe.tasks.{name}", name


def test_table_lists_datasets_only():
    assert {"gsm8k", "mmlu", "humaneval"} <= set(TASKS)
    assert not {"common", "embedded", "base", "registry", "requests"} & set(TASKS)


def test_an_unknown_dataset_is_a_one_line_error():
    with pytest.raises(QwenPipeError, match="unknown dataset 'gsm8kk'"):
        get_task("gsm8kk")


def test_sources_sit_below_the_tasks():
    """The readers tasks build on import no task code (the fetch stage, qwen_pipe/fetch.py, joins the two)."""
    sources = sorted((PACKAGE_DIR / "sources").glob("*.py"))
    assert not [relative(f) for f in closure(sources) if f.is_relative_to(PACKAGE_DIR / "tasks")]
