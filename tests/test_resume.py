"""Generation and scoring resume: a raised sample limit generates only the new samples, and a generate or
score stage killed mid-run (SIGKILL, no clean-up) resumes from its flushed chunks without losing or
duplicating a sample.

The stage scripts run by hand in a copy of the repository with its tiny models built and humaneval fetched:
no `dvc repro` is needed, so this module runs beside the end-to-end module on another pytest-xdist worker.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from pipeline_project import (
    commit_all,
    copy_checkout,
    edited_params,
    generation_meta,
    metrics,
    project_env,
    sh,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    target = copy_checkout(tmp_path_factory.mktemp("resume") / "repo")
    commit_all(target)  # provenance records the commit
    sh(target, "python", "stages/build_models.py")
    sh(target, "python", "stages/fetch.py", "--dataset", "humaneval")
    return target


def test_raising_the_limit_generates_only_the_new_samples(project):
    """A limit raised to 100 reuses every answer already generated (the same seeded subset grows)."""
    cell = ["--model", "tiny_small", "--preset", "balanced", "--dataset", "humaneval"]
    sh(project, "python", "stages/generate.py", *cell)  # the default limit (20)
    generated = project / "data/generations/tiny_small/balanced/humaneval.jsonl"
    before = {json.loads(line)["id"] for line in generated.open()}
    with edited_params(project, lambda p: p["tasks"]["humaneval"].update(sample_limit=100)):
        sh(project, "python", "stages/generate.py", *cell)
    meta = generation_meta(project, "tiny_small", "humaneval")
    assert meta["cache"]["hits"] == len(before) > 0 and meta["cache"]["misses"] == 100 - len(before)
    records = [json.loads(line) for line in generated.open()]
    assert len(records) == len({r["id"] for r in records}) == 100 and before <= {r["id"] for r in records}


def _kill_when(project: Path, args: list[str], ready) -> None:
    process = subprocess.Popen(
        args,
        cwd=project,
        env=project_env(project),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the stage finished before it could be killed: make the workload larger"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_killed_generate_and_score_resume(project):
    cache = project / "data/cache/generations/tiny_large/balanced/humaneval"
    cell = ["--model", "tiny_large", "--preset", "balanced", "--dataset", "humaneval"]
    with edited_params(
        project,
        lambda p: (
            p["tasks"]["humaneval"].update(sample_limit=60),
            p["generate"].update(flush_every=4, max_new_tokens=96),
            p["score"].update(flush_every=4),
        ),
    ):
        _kill_and_resume(project, cache, cell)


def _kill_and_resume(project: Path, cache: Path, cell: list[str]) -> None:
    before = set(cache.glob("chunk-*.jsonl"))
    _kill_when(
        project,
        ["python", "stages/generate.py", *cell],
        lambda: len(set(cache.glob("chunk-*.jsonl")) - before) >= 2,
    )
    assert not list(cache.glob("*.tmp")) or all(p.name.startswith(".") for p in cache.glob("*.tmp"))
    sh(project, "python", "stages/generate.py", *cell)
    meta = generation_meta(project, "tiny_large", "humaneval")
    assert meta["cache"]["hits"] >= 8 and meta["cache"]["hits"] + meta["cache"]["misses"] == 60
    generated = project / "data/generations/tiny_large/balanced/humaneval.jsonl"
    records = [json.loads(line) for line in generated.open()]
    assert len(records) == len({r["id"] for r in records}) == 60

    scores = project / "data/cache/scores/tiny_large/balanced/humaneval"
    shutil.rmtree(scores, ignore_errors=True)
    _kill_when(
        project,
        ["python", "stages/score.py", *cell],
        lambda: len(list(scores.glob("chunk-*.jsonl"))) >= 2,
    )
    sh(project, "python", "stages/score.py", *cell)
    doc = metrics(project, "tiny_large", "humaneval")
    rows = [json.loads(line) for line in (project / "data/scores/tiny_large/balanced/humaneval.jsonl").open()]
    assert doc["n"] == 60 and len({r["id"] for r in rows}) == 60
