"""docs/tasks.md is generated from the registry and must match it."""

from __future__ import annotations

from qwen_pipe.taskdocs import render
from qwen_pipe.tasks import task_names

from support import ROOT


def test_tasks_doc_is_up_to_date():
    assert (ROOT / "docs" / "tasks.md").read_text() == render(), (
        "regenerate: qwen-pipe datasets list --markdown > docs/tasks.md"
    )


def test_at_least_seventeen_datasets_have_docs():
    base = task_names()
    assert len(base) >= 17
    doc = (ROOT / "docs" / "tasks.md").read_text()
    for name in base:
        assert f"| {name} |" in doc
