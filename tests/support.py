"""Helpers shared by the tests: the repository root, the offline data mirror, the CLI in a subprocess."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def mirror_dir() -> Path:
    """The offline data mirror: $QWEN_PIPE_DATA_DIR, else ../shared/datasets beside the repository."""
    path = Path(os.environ.get("QWEN_PIPE_DATA_DIR") or ROOT.parent / "shared" / "datasets")
    if not path.is_dir():
        pytest.fail(f"the offline data mirror is missing at {path}: set QWEN_PIPE_DATA_DIR")
    return path


def data_file(relative: str) -> Path:
    """A file of the offline data mirror; a clear failure when it is not there."""
    path = mirror_dir() / relative
    if not path.is_file():
        pytest.fail(f"{relative} not found in the data mirror {mirror_dir()}: set QWEN_PIPE_DATA_DIR")
    return path


def qwen_pipe(
    *args: str, cwd: Path = ROOT, env: dict | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "qwen_pipe.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


ENGINE_LOG_MARKS = (" INFO ", " WARNING ", "Warning:", "Traceback")  # vLLM's, torch's, Python's


def is_engine_log(line: str) -> bool:
    """A line an engine (vLLM, torch, Python's warnings) printed, not one of qwen-pipe's own."""
    return any(mark in line for mark in ENGINE_LOG_MARKS)


def require_dev_extra(*modules: str) -> None:
    """The dev extra's packages (lm-eval[ifeval], pinned; vLLM comes with `make install`): missing, the test
    fails saying how to install them, never skips."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run `make install` (pip install -e '.[dev]')")


def lm_eval_tasks() -> Path:
    """lm-evaluation-harness's own task YAMLs, read as data."""
    require_dev_extra("lm_eval")
    return Path(importlib.util.find_spec("lm_eval").origin).parent / "tasks"


def metrics_tree(*docs: dict) -> dict:
    """What `report.load_metrics` returns, holding only these eval metrics documents."""
    tree: dict = {}
    for doc in docs:
        tree.setdefault(doc["model"], {}).setdefault(doc["preset"], {})[doc["dataset"]] = doc
    return {
        "eval": tree,
        "coverage": {},
        "validate": None,
        "scaling": None,
        "performance": None,
        "cost_scaling": None,
    }
