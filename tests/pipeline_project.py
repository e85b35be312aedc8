"""A copy of the repository to run the pipeline in, and the helpers the pipeline tests share."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from support import ROOT


def copy_checkout(target: Path) -> Path:
    """Tracked and untracked-but-not-ignored files of the checkout, without pipeline outputs, as a git repo."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file() and not name.startswith(("data/", "metrics/", "reports/")) and name != "dvc.lock":
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def commit_all(project: Path) -> None:
    sh(project, "git", "init", "-q")
    sh(project, "git", "add", "-A")
    sh(project, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy")


def sh(project: Path, *args: str, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess:
    done = subprocess.run(
        args,
        cwd=project,
        env=project_env(project),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        )
    return done


def project_env(project: Path) -> dict:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(project),  # the copy's code, not the checkout's editable install
        "DVC_NO_ANALYTICS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "QWEN_PIPE_PROGRESS": "0",
    }


def edit_params(project: Path, change) -> None:
    path = project / "params.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@contextlib.contextmanager
def edited_params(project: Path, change):
    """params.yaml changed for one test and put back after it, so the next test starts from the default
    (stages run by hand leave outputs that the next repro answers from the caches)."""
    path = project / "params.yaml"
    original = path.read_text()
    edit_params(project, change)
    try:
        yield
    finally:
        path.write_text(original)


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def metrics(project: Path, model: str, dataset: str, preset: str = "balanced") -> dict:
    return json.loads((project / "metrics/eval" / model / preset / f"{dataset}.json").read_text())


def generation_meta(project: Path, model: str, dataset: str, preset: str = "balanced") -> dict:
    return json.loads((project / "data/generations" / model / preset / f"{dataset}.meta.json").read_text())
