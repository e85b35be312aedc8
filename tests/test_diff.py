"""`qwen-pipe diff A [B]` on a throwaway git + DVC repository: one model x preset, two datasets, three commits.

c1: d 150/200 correct.  c2: d 120/200 (the same ids: 30 items lost), 3 truncated; e added (100/200).
c3: d 122/200 (2 items regained); e failed.  Per-sample scores are DVC-cached outputs, metrics plain files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support import qwen_pipe

ENV = {"DVC_NO_ANALYTICS": "1"}
MAKE = """\
import json, math, sys
from pathlib import Path
import yaml

dataset = sys.argv[1]
params = yaml.safe_load(open("params.yaml"))[dataset]
scores = Path(f"data/scores/m/balanced/{dataset}.jsonl")
metrics = Path(f"metrics/eval/m/balanced/{dataset}.json")
scores.parent.mkdir(parents=True, exist_ok=True)
metrics.parent.mkdir(parents=True, exist_ok=True)
if params.get("failed"):
    scores.write_text("")
    doc = {"status": "failed", "primary_metric": "acc", "score": None, "stderr": None, "n": 0}
else:
    correct, n = params["correct"], 200
    rows = [{"id": f"q{i}", "metrics": {"acc": float(i < correct)}} for i in range(n)]
    scores.write_text("".join(json.dumps(row) + "\\n" for row in rows))
    score = correct / n
    doc = {"status": "ok", "primary_metric": "acc", "score": score, "stderr": math.sqrt(score * (1 - score) / (n - 1)),
           "n": n, "truncated": params.get("truncated", 0)}
metrics.write_text(json.dumps(doc))
"""


def stage(dataset: str) -> dict:
    return {
        "cmd": f"python make.py {dataset}",
        "deps": ["make.py"],
        "params": [dataset],
        "outs": [f"data/scores/m/balanced/{dataset}.jsonl"],
        "metrics": [{f"metrics/eval/m/balanced/{dataset}.json": {"cache": False}}],
    }


def sh(repo: Path, *command: str) -> None:
    subprocess.run(command, cwd=repo, check=True, capture_output=True, env={**os.environ, **ENV})


def dvc(repo: Path, *args: str) -> None:
    sh(repo, sys.executable, "-m", "dvc", *args)


def commit(repo: Path, tag: str, params: dict) -> None:
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {name: stage(name) for name in params}}))
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    dvc(repo, "repro", "--quiet")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "--quiet", "-m", tag)
    sh(repo, "git", "tag", tag)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("diff") / "repo"
    root.mkdir()
    sh(root, "git", "init", "--quiet")
    sh(root, "git", "config", "user.name", "test")
    sh(root, "git", "config", "user.email", "test@example.com")
    dvc(root, "init", "--quiet")
    (root / "make.py").write_text(MAKE)
    commit(root, "c1", {"d": {"correct": 150}})
    commit(root, "c2", {"d": {"correct": 120, "truncated": 3}, "e": {"correct": 100}})
    commit(root, "c3", {"d": {"correct": 122, "truncated": 3}, "e": {"failed": True}})
    return root


def run_diff(*args: str, cwd: Path, output: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """The table on stdout, the full result from --json."""
    done = qwen_pipe("diff", *args, "--json", str(output), cwd=cwd, env=ENV, timeout=120)
    assert output.is_file(), done.stderr
    return done, json.loads(output.read_text())


def by_dataset(result: dict) -> dict[str, dict]:
    return {c["dataset"]: c for c in result["cells"]}


def assert_one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_a_significant_regression_fails_and_a_new_cell_is_added(repo, tmp_path):
    done, result = run_diff("c1", "c2", cwd=repo, output=tmp_path / "diff.json")
    assert done.returncode == 1, done.stderr
    table = done.stdout.splitlines()
    assert table[0].split()[:3] == ["cell", "metric", "A"]
    assert "regression" in table[2] and "m x balanced x d" in table[2]  # regressions first
    assert "added" in done.stdout and "1 regression, 1 added" in table[-1]
    assert result["regressions"] == 1
    d = by_dataset(result)["d"]
    assert (d["verdict"], d["evidence"], d["metric"]) == ("regression", "paired", "acc")
    assert d["a"] == 0.75 and d["b"] == 0.6 and d["delta"] == pytest.approx(-0.15)
    assert d["comparison"]["test"] == "mcnemar_exact"
    assert d["comparison"]["discordant"] == {"only_a": 30, "only_b": 0}  # the same ids: 30 lost, none gained
    assert d["p_value"] < 1e-6 and d["high"] < 0
    assert d["other"]["truncated"] == {"a": 0, "b": 3, "delta": 3}
    assert by_dataset(result)["e"]["verdict"] == "added"


def test_two_items_are_noise_and_a_failed_cell_is_named(repo):
    done = qwen_pipe("diff", "c2", "c3", "--json", "-", cwd=repo, env=ENV)
    result = json.loads(done.stdout)  # --json -: the JSON alone on stdout
    assert done.returncode == 0, done.stderr
    cells = by_dataset(result)
    assert cells["d"]["verdict"] == "within noise" and cells["d"]["evidence"] == "paired"
    assert cells["d"]["p_value"] == pytest.approx(0.5) and cells["d"]["other"] == {}
    assert cells["e"]["verdict"] == "failed in B" and cells["e"]["status"] == {"a": "ok", "b": "failed"}
    assert [c["verdict"] for c in result["cells"]] == ["failed in B", "within noise"]


def test_improvement_and_a_removed_cell(repo, tmp_path):
    done, result = run_diff("c2", "c1", cwd=repo, output=tmp_path / "diff.json")
    assert done.returncode == 0, done.stderr
    cells = by_dataset(result)
    assert cells["d"]["verdict"] == "improvement" and cells["d"]["delta"] == pytest.approx(0.15)
    assert cells["e"]["verdict"] == "removed"


def test_workspace_against_a_commit_from_a_subfolder(repo, tmp_path):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump({**params, "d": {"correct": 160, "truncated": 3}}))
    sh(repo, sys.executable, "make.py", "d")  # the workspace changes; nothing is committed
    try:
        done, result = run_diff("HEAD", cwd=repo / "metrics" / "eval", output=tmp_path / "head.json")
        assert done.returncode == 0, done.stderr
        assert result["b"] == {"name": "workspace", "commit": None}
        d = by_dataset(result)["d"]
        assert (d["verdict"], d["evidence"], d["a"], d["b"]) == ("improvement", "paired", 0.61, 0.8)
        assert by_dataset(result)["e"]["verdict"] == "failed in both"

        output = tmp_path / "diff.json"
        done = qwen_pipe("diff", "c1", "--repo", str(repo), "--json", str(output), cwd=tmp_path, env=ENV)
        assert done.returncode == 0, done.stderr  # 150 -> 160: an improvement
        assert "improvement" in done.stdout and "c1 (" in done.stdout and "workspace" in done.stdout
        assert by_dataset(json.loads(output.read_text()))["d"]["delta"] == pytest.approx(0.05)
    finally:
        sh(repo, "git", "checkout", "--", "params.yaml", "metrics")
        sh(repo, sys.executable, "make.py", "d")  # c3's per-sample file again, byte for byte


def test_without_cached_samples_the_standard_errors_decide_and_say_so(repo, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(repo, copy, symlinks=True)
    shutil.rmtree(copy / ".dvc" / "cache")
    done, result = run_diff("c1", "c2", cwd=copy, output=tmp_path / "diff.json")
    assert done.returncode == 1, done.stderr
    d = by_dataset(result)["d"]
    assert (d["verdict"], d["evidence"]) == ("regression", "stderr")
    assert d["comparison"]["test"] == "unpaired_normal"
    assert any("c1 is in neither the DVC cache nor a remote" in note for note in d["notes"])
    assert "note: m x balanced x d: per-sample scores unavailable, stderr used" in done.stdout


def test_bad_revision_and_no_repository_are_one_line_errors(repo, tmp_path):
    assert_one_line_error(qwen_pipe("diff", "nope", cwd=repo, env=ENV), "unknown revision 'nope'")
    assert_one_line_error(qwen_pipe("diff", "c1", "nope2", cwd=repo, env=ENV), "unknown revision 'nope2'")
    assert_one_line_error(qwen_pipe("diff", "HEAD", cwd=tmp_path, env=ENV), "not inside a git repository")
    sh(tmp_path, "git", "init", "--quiet")
    assert_one_line_error(qwen_pipe("diff", "HEAD", "--repo", str(tmp_path), env=ENV), "not a DVC repository")


JUDGED = """\
import json, math, sys
from pathlib import Path
import yaml

ratings = yaml.safe_load(open("params.yaml"))["ratings"]
rows = Path("data/judgments/m/balanced/mt_bench.jsonl")
metrics = Path("metrics/judge/m/balanced/mt_bench.json")
rows.parent.mkdir(parents=True, exist_ok=True)
metrics.parent.mkdir(parents=True, exist_ok=True)
rows.write_text("".join(json.dumps({"id": f"q{i}", "metrics": {"rating": r}}) + "\\n" for i, r in enumerate(ratings)))
mean = sum(ratings) / len(ratings)
stderr = math.sqrt(sum((r - mean) ** 2 for r in ratings) / (len(ratings) - 1) / len(ratings))
metrics.write_text(json.dumps({"status": "ok", "primary_metric": "rating", "score": mean, "stderr": stderr, "n": len(ratings)}))
"""


def test_a_judged_cell_is_diffed_on_its_judges_per_sample_ratings(tmp_path):
    """metrics/judge cells (MT-Bench's rating) are judged like eval cells, paired on data/judgments."""
    root = tmp_path / "judged"
    root.mkdir()
    for command in (
        ("git", "init", "--quiet"),
        ("git", "config", "user.name", "t"),
        ("git", "config", "user.email", "t@e"),
    ):
        sh(root, *command)
    dvc(root, "init", "--quiet")
    (root / "judge.py").write_text(JUDGED)
    judge_stage = {
        "cmd": "python judge.py",
        "deps": ["judge.py"],
        "params": ["ratings"],
        "outs": ["data/judgments"],
        "metrics": [{"metrics/judge": {"cache": False}}],
    }
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"judge": judge_stage}}))
    for tag, ratings in (("j1", [8, 7, 9, 8] * 20), ("j2", [6, 7, 9, 6] * 20)):
        (root / "params.yaml").write_text(yaml.safe_dump({"ratings": ratings}))
        dvc(root, "repro", "--quiet")
        sh(root, "git", "add", "-A")
        sh(root, "git", "commit", "--quiet", "-m", tag)
        sh(root, "git", "tag", tag)
    done, result = run_diff("j1", "j2", cwd=root, output=tmp_path / "diff.json")
    assert done.returncode == 1, done.stderr  # 40 of 80 answers rated 2 lower: a regression
    [cell] = result["cells"]
    assert (cell["dataset"], cell["metric"], cell["verdict"], cell["evidence"]) == (
        "mt_bench",
        "rating",
        "regression",
        "paired",
    )
    assert cell["delta"] == pytest.approx(-1.0)
