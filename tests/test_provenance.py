"""Provenance: the dirty flag means changed code or params, not the run's own outputs."""

import shutil
import subprocess

import pytest

from qwen_pipe.provenance import provenance, working_tree_dirty


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_dirty_flag_ignores_what_the_pipeline_writes(tmp_path, monkeypatch):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    for name in ("params.yaml", "dvc.lock", "metrics/eval.json", "reports/report.md"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("a\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")  # the flag covers the whole checkout, wherever it is asked
    assert working_tree_dirty() is False
    for name in ("dvc.lock", "metrics/eval.json", "reports/report.md"):
        (tmp_path / name).write_text("b\n")
    assert working_tree_dirty() is False
    (tmp_path / "params.yaml").write_text("b\n")
    assert working_tree_dirty() is True


def test_outside_a_checkout_the_flag_is_unknown(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert working_tree_dirty() is None
    assert {"git_commit", "git_dirty", "packages", "hardware"} <= provenance().keys()
